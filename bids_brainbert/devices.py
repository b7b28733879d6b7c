"""The one place a ``--device`` request becomes a torch device, for embeddings, pretraining and the torch superlet."""

from __future__ import annotations

from typing import Any

from .errors import UsageError


def resolve_device(request: Any = "auto", local_rank: int | None = None):
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` (or a torch.device) ->
    torch.device; ``local_rank``: the process's GPU under torchrun for a bare ``cuda``. UsageError for a device
    that does not exist here."""
    import torch   # not at the top: the command line's --help and the configuration do not need torch

    if isinstance(request, torch.device):
        return request
    if request is None or request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {request!r} requested but CUDA is not available")
        if request == "cuda" and local_rank is not None:
            return torch.device("cuda", local_rank)
        return torch.device(request)
    if request != "cpu":
        raise UsageError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {request!r}")
    return torch.device("cpu")
