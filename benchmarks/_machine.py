"""One line describing the machine a benchmark ran on (CPU or GPU name, threads, torch)."""

from __future__ import annotations

import platform

import torch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(device)}"
    else:
        where = f"CPU {cpu_name()}, {torch.get_num_threads()} threads"
    return f"{where}; torch {torch.__version__}; Python {platform.python_version()}"
