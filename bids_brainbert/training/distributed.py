"""torchrun / DistributedDataParallel set-up and the device each rank trains on."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..devices import resolve_device
from ..errors import UsageError


# ------------------------------------------------------------------------------------------------ distributed
@dataclass
class _Dist:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.active:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.active:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value


class _NoBarrier(_Dist):
    """The process layout without the barrier, for the checkpoint written while every process is interrupted."""

    def barrier(self) -> None:
        pass


def _setup_distributed(device_request: str) -> _Dist:
    if dist.is_available() and dist.is_initialized():
        return _Dist(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), False)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return _Dist()
    if not dist.is_available():
        raise UsageError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise UsageError(f"WORLD_SIZE={world} but {name} is not set: launch with torchrun")
    wants_cuda = device_request.startswith("cuda") or (device_request == "auto" and torch.cuda.is_available())
    backend = "nccl" if wants_cuda else "gloo"
    dist.init_process_group(backend=backend)
    return _Dist(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), True)


def _resolve_device(request: str, ddp: _Dist) -> torch.device:
    wants_cuda = request in ("cuda", "auto") and torch.cuda.is_available()   # a bare cuda: this rank's GPU
    rank = (ddp.local_rank if ddp.active else torch.cuda.current_device()) if wants_cuda else None
    return resolve_device(request, local_rank=rank)
