"""The BrainBERT reconstruction loss, scored on masked cells only.

``loss = mean |pred - target| over masked cells + alpha * mean |pred - target| over masked cells with
|target| > threshold`` (alpha 2, threshold 1: the "content-aware" term favours the high-energy cells that a
z-scored spectrogram mostly flattens to zero).

The published criterion took a mean over an empty selection when no masked cell exceeded the threshold and
returned NaN; here the term is exactly 0 then (and its gradient 0), whatever the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import UsageError


class LossParts(NamedTuple):
    """``loss`` (scalar tensor, with grad), and its detached parts for logging."""

    loss: torch.Tensor
    l1: torch.Tensor
    content_l1: torch.Tensor
    n_masked: torch.Tensor
    n_content: torch.Tensor


def masked_reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                               alpha: float = 2.0, threshold: float = 1.0) -> LossParts:
    """Masked L1 + ``alpha`` × content-aware masked L1; all three tensors share one shape, e.g. (B, T, F).

    Cells where ``mask`` is False contribute nothing, neither to the value nor to the gradient. Computed in
    float32 whatever the prediction's dtype (bf16 under autocast).
    """
    if prediction.shape != target.shape or mask.shape != target.shape:
        raise UsageError(f"loss: shapes differ: prediction {tuple(prediction.shape)}, target "
                         f"{tuple(target.shape)}, mask {tuple(mask.shape)}")
    mask = mask.to(torch.bool)
    error = (prediction.float() - target.float()).abs()
    # where() instead of multiplication: an inf/NaN prediction at an unscored cell must not leak in.
    masked_error = torch.where(mask, error, torch.zeros((), dtype=error.dtype, device=error.device))
    n_masked = mask.sum()
    l1 = masked_error.sum() / n_masked.clamp_min(1)
    content = mask & (target.float().abs() > threshold)
    n_content = content.sum()
    content_error = torch.where(content, error, torch.zeros((), dtype=error.dtype, device=error.device))
    content_l1 = content_error.sum() / n_content.clamp_min(1)   # exactly 0 when no cell qualifies
    loss = l1 + alpha * content_l1
    return LossParts(loss, l1.detach(), content_l1.detach(), n_masked, n_content)
