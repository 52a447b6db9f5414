"""One line describing the machine a benchmark ran on (CPU or GPU name, vector unit, threads, torch)."""

from __future__ import annotations

import platform

import torch


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_vector_unit() -> str:
    """The widest vector unit torch's kernels use here (AVX2, AVX512, ...), and bfloat16 support.

    CPUs sold under one name (e.g. "AMD EPYC") differ in both, and so does the training step:
    ``composition-small`` took 72 ms a step on an AVX2 EPYC and 27-29 ms on an AVX-512 one.
    """
    unit = torch.backends.cpu.get_cpu_capability()
    flags = (_cpuinfo_field("flags") or "").split()
    bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    return f"{unit}{', bf16' if bf16 else ''}"


def describe(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(device)}"
    else:
        where = f"CPU {cpu_name()} ({cpu_vector_unit()}), {torch.get_num_threads()} threads"
    return f"{where}; torch {torch.__version__}; Python {platform.python_version()}"
