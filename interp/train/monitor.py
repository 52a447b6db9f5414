"""What a run shows while it trains: TensorBoard scalars and a progress bar.

Both are optional (``train.tensorboard``, ``train.progress``) and imported only when on.
TensorBoard events go to ``RUN_DIR/tensorboard``; a resumed run purges events past its
checkpoint's step, so curves never double back.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SHOWN_SPLITS = ("train", "test_id", "test_ood")


def open_tensorboard(run_dir: Path, step: int) -> Any:
    """A ``SummaryWriter`` on ``RUN_DIR/tensorboard`` that drops events after ``step``."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=step + 1)


def open_progress(total: int, step: int, name: str) -> Any:
    """A tqdm bar from ``step`` to ``total``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=step, desc=name, unit="step", dynamic_ncols=True)


def show(writer: Any, bar: Any, step: int, loss: float, acc: dict[str, float]) -> None:
    """One evaluation: loss and accuracies to TensorBoard (NaN splits skipped), a summary on the bar."""
    if writer is not None:
        writer.add_scalar("loss/train", loss, step)
        for k, v in acc.items():
            if not math.isnan(v):
                writer.add_scalar(f"accuracy/{k}", v, step)
        writer.flush()
    if bar is not None:
        bar.set_postfix(
            {"loss": f"{loss:.3f}", **{k: f"{v:.2f}" for k, v in acc.items() if k in SHOWN_SPLITS}}, refresh=False
        )
