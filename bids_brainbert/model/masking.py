"""Masked spectrogram modelling: pick time spans and frequency spans, corrupt them, remember which cells.

Per example (a (T, F) window), following REFERENCE §1 "Pretraining":

- time spans: each frame in ``[0, T - time_span_max]`` starts a span with probability ``p_time``; the span lasts
  ``time_span_min..time_span_max`` frames (uniform) and covers every frequency;
- frequency spans: each bin in ``[0, F - freq_span_max]`` starts a span with probability ``p_freq``; it covers
  ``freq_span_min..freq_span_max`` bins at every frame;
- spans of one kind never overlap or touch (a new start must lie after the previous span's end), so each span
  gets one fate: 80% zeroed, 10% overwritten with a span of the same length copied from another start of the
  same kind (other frames for a time span, other bins for a frequency span — taken from the clean input),
  10% left unchanged;
- ``mask`` is True exactly on the cells of the selected spans, time OR frequency. The published code built its
  frequency labels from the *time* spans, so real frequency-masked cells were never scored; here they are.
- an example that drew no span at all gets one time span at a random start, so every example has a masked
  cell and the loss is always defined.

All randomness comes from the ``torch.Generator`` passed in: the same generator state gives the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..errors import UsageError


@dataclass(frozen=True)
class MaskConfig:
    """Span masking parameters; probabilities are per candidate start position."""

    p_time: float = 0.05
    p_freq: float = 0.05
    time_span_min: int = 1
    time_span_max: int = 5
    freq_span_min: int = 1
    freq_span_max: int = 2
    zero_fraction: float = 0.8
    replace_fraction: float = 0.1   # the rest (0.1) stays unchanged but is still scored
    fill_value: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_time", "p_freq", "zero_fraction", "replace_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"mask config: {name} must lie in [0, 1], got {value!r}")
        if self.zero_fraction + self.replace_fraction > 1.0 + 1e-9:
            raise UsageError("mask config: zero_fraction + replace_fraction must not exceed 1")
        if not 1 <= self.time_span_min <= self.time_span_max:
            raise UsageError("mask config: need 1 <= time_span_min <= time_span_max")
        if not 1 <= self.freq_span_min <= self.freq_span_max:
            raise UsageError("mask config: need 1 <= freq_span_min <= freq_span_max")


class MaskedBatch(NamedTuple):
    """``masked``: corrupted input, same shape as the input; ``mask``: bool, True on every selected cell;
    ``time_mask`` (B, T) / ``freq_mask`` (B, F): the frames / bins covered by time / frequency spans;
    ``zeroed``, ``replaced``: bool like ``mask``, the cells whose span was zeroed / overwritten by a copy."""

    masked: torch.Tensor
    mask: torch.Tensor
    time_mask: torch.Tensor
    freq_mask: torch.Tensor
    zeroed: torch.Tensor
    replaced: torch.Tensor


def _pick_spans(drawn_starts: list[int], lengths: list[int]) -> list[tuple[int, int]]:
    """Greedy non-overlapping, non-touching spans (start, length) from the drawn starts, in increasing order."""
    spans: list[tuple[int, int]] = []
    end = -1  # exclusive end of the previous span; the next start must be > end
    for start in drawn_starts:
        if start > end:
            spans.append((start, lengths[start]))
            end = start + lengths[start]
    return spans


def mask_spectrogram(x: torch.Tensor, config: MaskConfig | None = None,
                     generator: torch.Generator | None = None) -> MaskedBatch:
    """Mask a window (T, F) or a batch of windows (B, T, F); see the module docstring.

    Needs T > time_span_max and F > freq_span_max (a span must fit with another start to copy from).
    The random draws happen on the CPU with ``generator``; the outputs live on ``x``'s device.
    """
    cfg = config or MaskConfig()
    squeeze = x.dim() == 2
    batch = x.unsqueeze(0) if squeeze else x
    if batch.dim() != 3:
        raise UsageError(f"mask_spectrogram expects (T, F) or (B, T, F), got shape {tuple(x.shape)}")
    n_batch, n_time, n_freq = batch.shape
    if n_time <= cfg.time_span_max or n_freq <= cfg.freq_span_max:
        raise UsageError(f"window of {n_time} frames x {n_freq} bins is too small for spans up to "
                         f"{cfg.time_span_max} frames / {cfg.freq_span_max} bins")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)

    n_time_starts = n_time - cfg.time_span_max + 1
    n_freq_starts = n_freq - cfg.freq_span_max + 1
    # Every random number is drawn up front, in fixed shapes, so the stream does not depend on the outcome.
    t_draw = (torch.rand(n_batch, n_time_starts, generator=gen) < cfg.p_time).numpy()
    t_len = torch.randint(cfg.time_span_min, cfg.time_span_max + 1, (n_batch, n_time_starts), generator=gen).tolist()
    t_dice = torch.rand(n_batch, n_time_starts, generator=gen).tolist()
    t_src = torch.randint(1, n_time_starts, (n_batch, n_time_starts), generator=gen).tolist() \
        if n_time_starts > 1 else [[0] * n_time_starts for _ in range(n_batch)]
    f_draw = (torch.rand(n_batch, n_freq_starts, generator=gen) < cfg.p_freq).numpy()
    f_len = torch.randint(cfg.freq_span_min, cfg.freq_span_max + 1, (n_batch, n_freq_starts), generator=gen).tolist()
    f_dice = torch.rand(n_batch, n_freq_starts, generator=gen).tolist()
    f_src = torch.randint(1, n_freq_starts, (n_batch, n_freq_starts), generator=gen).tolist() \
        if n_freq_starts > 1 else [[0] * n_freq_starts for _ in range(n_batch)]
    forced_start = torch.randint(0, n_time_starts, (n_batch,), generator=gen).tolist()

    # Per-span bookkeeping in numpy: slicing small arrays there is ~10x cheaper than in torch.
    time_index = np.tile(np.arange(n_time), (n_batch, 1))     # frame each output frame is read from
    freq_index = np.tile(np.arange(n_freq), (n_batch, 1))     # bin each output bin is read from
    time_mask = np.zeros((n_batch, n_time), dtype=bool)
    freq_mask = np.zeros((n_batch, n_freq), dtype=bool)
    time_zero = np.zeros((n_batch, n_time), dtype=bool)
    freq_zero = np.zeros((n_batch, n_freq), dtype=bool)
    time_copy = np.zeros((n_batch, n_time), dtype=bool)
    freq_copy = np.zeros((n_batch, n_freq), dtype=bool)
    zero_cut = cfg.zero_fraction
    copy_cut = cfg.zero_fraction + cfg.replace_fraction

    def apply(b: int, spans, dice, src, n_starts, index, selected, zero, copy) -> None:
        for start, length in spans:
            selected[b, start:start + length] = True
            if dice[start] < zero_cut:
                zero[b, start:start + length] = True
            elif dice[start] < copy_cut:
                source = (start + src[start]) % n_starts  # any other start of the same kind
                index[b, start:start + length] = np.arange(source, source + length)
                copy[b, start:start + length] = True

    for b in range(n_batch):
        t_spans = _pick_spans(np.flatnonzero(t_draw[b]).tolist(), t_len[b])
        f_spans = _pick_spans(np.flatnonzero(f_draw[b]).tolist(), f_len[b])
        if not t_spans and not f_spans:
            t_spans = [(forced_start[b], t_len[b][forced_start[b]])]
        apply(b, t_spans, t_dice[b], t_src[b], n_time_starts, time_index, time_mask, time_zero, time_copy)
        apply(b, f_spans, f_dice[b], f_src[b], n_freq_starts, freq_index, freq_mask, freq_zero, freq_copy)

    device = batch.device

    def to_torch(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    time_index, freq_index = to_torch(time_index), to_torch(freq_index)
    time_mask, freq_mask = to_torch(time_mask), to_torch(freq_mask)
    time_zero, freq_zero = to_torch(time_zero), to_torch(freq_zero)
    time_copy, freq_copy = to_torch(time_copy), to_torch(freq_copy)
    # Time copies read other frames, frequency copies read other bins, both from the clean input.
    masked = batch.gather(1, time_index.unsqueeze(-1).expand(-1, -1, n_freq))
    masked = masked.gather(2, freq_index.unsqueeze(1).expand(-1, n_time, -1))
    zeroed = time_zero.unsqueeze(2) | freq_zero.unsqueeze(1)
    masked = masked.masked_fill(zeroed, cfg.fill_value)
    mask = time_mask.unsqueeze(2) | freq_mask.unsqueeze(1)
    replaced = (time_copy.unsqueeze(2) | freq_copy.unsqueeze(1)) & ~zeroed
    if squeeze:
        return MaskedBatch(masked[0], mask[0], time_mask[0], freq_mask[0], zeroed[0], replaced[0])
    return MaskedBatch(masked, mask, time_mask, freq_mask, zeroed, replaced)
