"""Masked spectrogram modelling: pick time spans and frequency spans, corrupt them, remember which cells.

Per example (a (T, F) window), following BrainBERT's pretraining (Wang et al. 2023 and its code):

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


def _pick_spans(drawn: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Greedy non-overlapping, non-touching spans from the drawn starts, for every example at once.

    ``drawn`` (B, S) bool: the starts drawn; ``lengths`` (B, S): each start's span length. Returns (B, S) bool:
    the starts kept, scanning each row in increasing order and keeping a start only if it lies after the end of
    the previous kept span. The scan runs over the k-th drawn start of every row at once (a handful of steps:
    about p·S), not over examples.
    """
    n_batch = drawn.shape[0]
    rows, cols = np.nonzero(drawn)                  # row-major: columns increase within a row
    counts = np.bincount(rows, minlength=n_batch)
    rank = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = np.full((n_batch, int(counts.max(initial=0))), -1, dtype=np.int64)
    starts[rows, rank] = cols
    span_len = np.zeros_like(starts)
    span_len[rows, rank] = lengths[rows, cols]
    kept = np.zeros(starts.shape, dtype=bool)
    end = np.full(n_batch, -1, dtype=np.int64)      # exclusive end of the previous span per row
    for k in range(starts.shape[1]):
        ok = starts[:, k] > end                     # -1 (no k-th start) is never > end >= -1
        kept[:, k] = ok
        end = np.where(ok, starts[:, k] + span_len[:, k], end)
    selected = np.zeros(drawn.shape, dtype=bool)
    selected[rows, cols] = kept[rows, rank]
    return selected


def _apply_spans(selected: np.ndarray, lengths: np.ndarray, dice: np.ndarray, src: np.ndarray, n_starts: int,
                 zero_cut: float, copy_cut: float, max_len: int, index: np.ndarray, covered: np.ndarray,
                 zero: np.ndarray, copy: np.ndarray) -> None:
    """Mark the cells of the kept spans (B, S) and their fate: zeroed, copied from another start, or unchanged."""
    rows, starts = np.nonzero(selected)
    length, roll = lengths[rows, starts], dice[rows, starts]
    source = (starts + src[rows, starts]) % n_starts   # any other start of the same kind
    zeroed, copied = roll < zero_cut, (roll >= zero_cut) & (roll < copy_cut)
    for offset in range(max_len):                       # spans never overlap: no cell is written twice
        inside = offset < length
        r, cell = rows[inside], starts[inside] + offset
        covered[r, cell] = True
        zero[r[zeroed[inside]], cell[zeroed[inside]]] = True
        moved = copied[inside]
        index[r[moved], cell[moved]] = source[inside][moved] + offset
        copy[r[moved], cell[moved]] = True


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
    t_len = torch.randint(cfg.time_span_min, cfg.time_span_max + 1, (n_batch, n_time_starts), generator=gen).numpy()
    t_dice = torch.rand(n_batch, n_time_starts, generator=gen).numpy()
    t_src = torch.randint(1, n_time_starts, (n_batch, n_time_starts), generator=gen).numpy() \
        if n_time_starts > 1 else np.zeros((n_batch, n_time_starts), dtype=np.int64)
    f_draw = (torch.rand(n_batch, n_freq_starts, generator=gen) < cfg.p_freq).numpy()
    f_len = torch.randint(cfg.freq_span_min, cfg.freq_span_max + 1, (n_batch, n_freq_starts), generator=gen).numpy()
    f_dice = torch.rand(n_batch, n_freq_starts, generator=gen).numpy()
    f_src = torch.randint(1, n_freq_starts, (n_batch, n_freq_starts), generator=gen).numpy() \
        if n_freq_starts > 1 else np.zeros((n_batch, n_freq_starts), dtype=np.int64)
    forced_start = torch.randint(0, n_time_starts, (n_batch,), generator=gen).numpy()

    # Span bookkeeping in numpy, vectorised over the batch (no per-example Python loop).
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

    t_spans = _pick_spans(t_draw, t_len)
    f_spans = _pick_spans(f_draw, f_len)
    empty = np.flatnonzero(~t_spans.any(axis=1) & ~f_spans.any(axis=1))
    t_spans[empty, forced_start[empty]] = True               # no span drawn at all: one time span, forced
    _apply_spans(t_spans, t_len, t_dice, t_src, n_time_starts, zero_cut, copy_cut, cfg.time_span_max,
                 time_index, time_mask, time_zero, time_copy)
    _apply_spans(f_spans, f_len, f_dice, f_src, n_freq_starts, zero_cut, copy_cut, cfg.freq_span_max,
                 freq_index, freq_mask, freq_zero, freq_copy)

    device = batch.device

    def to_torch(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    # Only the cells of the selected spans change: write those, copy the rest of the batch as it is. Time copies
    # read other frames of the clean input, then frequency copies read other bins of that (as two gathers would).
    masked = batch.clone()
    rows, frames = np.nonzero(time_copy)
    if rows.size:
        masked[to_torch(rows), to_torch(frames)] = batch[to_torch(rows), to_torch(time_index[rows, frames])]
    rows, bins = np.nonzero(freq_copy)
    if rows.size:
        masked[to_torch(rows), :, to_torch(bins)] = masked[to_torch(rows), :, to_torch(freq_index[rows, bins])]
    rows, frames = np.nonzero(time_zero)
    masked[to_torch(rows), to_torch(frames)] = cfg.fill_value
    rows, bins = np.nonzero(freq_zero)
    masked[to_torch(rows), :, to_torch(bins)] = cfg.fill_value
    time_mask, freq_mask = to_torch(time_mask), to_torch(freq_mask)
    time_zero, freq_zero = to_torch(time_zero), to_torch(freq_zero)
    time_copy, freq_copy = to_torch(time_copy), to_torch(freq_copy)
    zeroed = time_zero.unsqueeze(2) | freq_zero.unsqueeze(1)
    mask = time_mask.unsqueeze(2) | freq_mask.unsqueeze(1)
    replaced = (time_copy.unsqueeze(2) | freq_copy.unsqueeze(1)) & ~zeroed
    if squeeze:
        return MaskedBatch(masked[0], mask[0], time_mask[0], freq_mask[0], zeroed[0], replaced[0])
    return MaskedBatch(masked, mask, time_mask, freq_mask, zeroed, replaced)
