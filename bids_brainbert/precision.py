"""Numeric precision of the model: float32, or bfloat16 autocast where the hardware runs it natively.

``--precision`` takes ``float32`` (the default), ``bfloat16`` or ``auto``. ``auto`` picks bfloat16 on CUDA
devices that support it and on CPUs with native bf16 instructions (AVX-512-BF16 or AMX), else float32.

bfloat16 runs under ``torch.autocast``: the weights, their gradients and the optimizer state stay float32; the
matrix products (linear layers, attention) run in bf16 with float32 accumulation; LayerNorm and softmax accumulate
their statistics in float32 (CUDA autocast runs both wholly in float32; the CPU kernels compute in float32 and
round the output to bf16 — which costs nothing measurable: per-frame cosine to float32 > 0.9999 on the large
model, tests/test_precision.py); the loss is computed from ``prediction.float()``. Embeddings are pooled and
written as float32 whatever the precision.

Why float32 is the default and ``auto`` is opt-in: with float32 the same command gives the same embeddings on any
machine; ``auto`` would make the numbers depend on which CPU or GPU the job landed on. bf16 was 3.1-3.5x faster
than float32 on an idle AVX-512-BF16 CPU (benchmarks/model.py) at a per-window cosine above 0.9999 to float32
(benchmarks/precision_accuracy.py, README Performance), so it is the right choice for large pretraining runs and
for embedding many hours; the precision used is recorded in every embedding sidecar and model card.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ContextManager

from .errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "float32", "bfloat16")


CPUINFO = "/proc/cpuinfo"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str = CPUINFO) -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512-BF16 or AMX-BF16), from the kernel's CPU flags.

    Without native instructions oneDNN emulates bf16 and it is slower than float32, so ``auto`` stays float32
    there (and on systems without ``/proc/cpuinfo``).
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in NATIVE_BF16_FLAGS)
    except OSError:
        pass
    return False


def resolve_precision(request: str, device: torch.device | str) -> str:
    """``request`` ("auto", "float32", "bfloat16") on ``device`` → the precision used: "float32" or "bfloat16"."""
    if request not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {request!r}")
    if request != "auto":
        return request
    import torch   # not at the top: the configuration checks --precision's choices before torch is needed

    device = torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    if device.type == "cpu":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    return "float32"


def autocast(precision: str, device: torch.device | str) -> ContextManager[Any]:
    """The context the model's forward pass runs in: bf16 autocast for "bfloat16", nothing for "float32"."""
    if precision == "float32":
        return nullcontext()
    if precision != "bfloat16":
        raise UsageError(f"precision must be resolved to float32 or bfloat16 first, got {precision!r}")
    import torch

    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def precision_record(request: str, used: str) -> dict[str, str]:
    """What sidecars and model cards record: the precision asked for and the one the model ran in."""
    return {"Requested": request, "Used": used,
            "Description": "float32 throughout" if used == "float32" else
            "bfloat16 autocast (weights float32, matrix products bf16 with float32 accumulation, pooling float32)"}


__all__ = ["PRECISIONS", "autocast", "cpu_has_native_bf16", "precision_record", "resolve_precision"]
