"""Optimizers (AdamW, or LAMB as published) and the learning-rate schedule of pretraining."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Iterable

import torch
from torch import nn

from ..errors import UsageError

if TYPE_CHECKING:   # the loop's settings; pretrain.py imports this module
    from .pretrain import PretrainConfig


# ----------------------------------------------------------------------------------------------- optimizers
class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2020): Adam moments with bias correction and decoupled weight decay, each tensor's
    update rescaled by the trust ratio ||w|| / ||update|| (||w|| clipped at ``clamp_value``; ratio 1 when
    either norm is 0). State per tensor: step, exp_avg, exp_avg_sq (all tensors, so it saves to safetensors)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, clamp_value: float = 10.0):
        if lr <= 0 or eps <= 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise UsageError(f"LAMB: invalid lr={lr}, eps={eps} or betas={betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "clamp_value": clamp_value})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = (exp_avg / (1 - beta1 ** t)) / ((exp_avg_sq / (1 - beta2 ** t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                weight_norm = p.norm().clamp(max=group["clamp_value"])
                update_norm = update.norm()
                trust = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm,
                                    torch.ones_like(weight_norm))
                p.add_(update * (-group["lr"] * trust))
        return loss


def build_optimizer(model: nn.Module, config: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW or LAMB over two groups: matrices with weight decay, biases and LayerNorm parameters without."""
    decay, no_decay = [], []
    for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "lamb":
        return Lamb(groups, lr=config.lr, betas=config.betas)
    # on CUDA the fused kernel: one launch for all tensors instead of several per tensor
    fused = {"fused": True} if decay and decay[0].is_cuda else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, **fused)


def lr_factor(step: int, config: PretrainConfig) -> float:
    """Multiplier of ``config.lr`` for the update with 0-based index ``step``."""
    total = config.steps
    warmup = int(config.warmup_fraction * total)
    if step < warmup:
        return (step + 1) / warmup
    after, span = step - warmup, max(1, total - warmup)
    if config.decay == "step":
        return config.decay_gamma ** math.floor(after / max(1.0, span * config.decay_every_fraction))
    if config.decay == "linear":
        return max(0.0, 1.0 - after / span)
    if config.decay == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, after / span)))
    return 1.0
