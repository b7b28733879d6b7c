"""Model, masking, loss and checkpoints (ours and the published BrainBERT format)."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bids_brainbert.errors import BidsBrainbertError, UsageError
from bids_brainbert.model import (PRESETS, BrainBertPretrainModel, CheckpointError, MaskConfig, ModelConfig,
                                  build_model, count_parameters, load_checkpoint, load_published_checkpoint,
                                  mask_spectrogram, masked_reconstruction_loss, save_checkpoint, weights_sha256)
from bids_brainbert.model.checkpoints import load_training_state
from bids_brainbert.training.pretrain import Lamb

TINY = ModelConfig(n_freqs=8, d_model=32, n_layers=2, n_heads=4, d_ff=48, max_frames=64)


def tiny_model(seed: int = 0, perturb: bool = True) -> BrainBertPretrainModel:
    """A tiny model; with ``perturb`` every parameter (LayerNorms and biases too) is moved off its init value,
    so a mistake in any key mapping changes the outputs."""
    model = build_model(TINY, seed=seed)
    if perturb:
        gen = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return model.eval()


def windows(batch: int = 3, frames: int = 20, freqs: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, frames, freqs, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ encoder
def test_preset_parameter_counts_match_published_sizes():
    counts = {name: count_parameters(build_model(name)) for name in PRESETS}
    # Published: small 4.7 M, base 21.9 M, large 43.2 M (REFERENCE §1).
    assert counts["large"] == 43_183_144
    assert round(counts["large"] / 1e6, 1) == 43.2
    assert round(counts["base"] / 1e6, 1) == 21.9
    assert round(counts["small"] / 1e6, 1) == 4.7
    assert PRESETS["large"].n_layers == 6 and PRESETS["large"].d_model == 768 and PRESETS["large"].d_ff == 3072
    assert PRESETS["small"].d_model % PRESETS["small"].n_heads == 0


def test_forward_shapes_and_all_layers():
    model = tiny_model()
    x = windows()
    assert model(x).shape == (3, 20, 8)
    hidden = model.encoder(x)
    assert hidden.shape == (3, 20, 32)
    layers = model.encoder(x, return_layers=True)
    assert len(layers) == TINY.n_layers + 1
    assert all(h.shape == (3, 20, 32) for h in layers)
    torch.testing.assert_close(layers[-1], hidden)
    torch.testing.assert_close(model.hidden_states(x, layer=1), layers[1])
    torch.testing.assert_close(model.hidden_states(x, layer=0), model.encoder.embed_input(x))
    with pytest.raises(UsageError):
        model.hidden_states(x, layer=5)
    with pytest.raises(UsageError):
        model(torch.zeros(2, 10, 7))               # wrong number of frequencies
    with pytest.raises(UsageError):
        model(torch.zeros(1, TINY.max_frames + 1, 8))


def test_positions_are_fixed_sinusoids_not_parameters():
    model = tiny_model(perturb=False).train()
    names = {n for n, _ in model.named_parameters()}
    assert not any("position" in n for n in names)
    assert not any("position" in k for k in model.state_dict())   # not saved either: computed
    pos = model.encoder.positions
    assert pos.shape == (TINY.max_frames, TINY.d_model) and not pos.requires_grad
    k = torch.arange(0, TINY.d_model, 2, dtype=torch.float64)
    t = torch.arange(TINY.max_frames, dtype=torch.float64)[:, None]
    expected = torch.empty(TINY.max_frames, TINY.d_model, dtype=torch.float64)
    expected[:, 0::2] = torch.sin(t / 10000 ** (k / TINY.d_model))
    expected[:, 1::2] = torch.cos(t / 10000 ** (k / TINY.d_model))
    torch.testing.assert_close(pos.double(), expected, atol=1e-4, rtol=0)
    before = pos.clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model(windows()).sum().backward()
    opt.step()
    assert torch.equal(model.encoder.positions, before)


def test_layernorm_init_is_identity_not_bias_one():
    model = build_model(TINY, seed=3)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    # input norm + 2 per encoder layer + the head's norm
    assert len(norms) == 1 + 2 * TINY.n_layers + 1
    for norm in norms:
        assert torch.all(norm.bias == 0) and torch.all(norm.weight == 1)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            assert torch.all(module.bias == 0)


def test_architecture_is_post_ln_gelu_batch_first():
    model = build_model(TINY)
    for layer in model.encoder.layers:
        assert isinstance(layer, nn.TransformerEncoderLayer)
        assert layer.norm_first is False and layer.self_attn.batch_first is True
        assert layer.activation is torch.nn.functional.gelu
    assert isinstance(model.head.activation, nn.GELU)
    assert model.head.out.out_features == TINY.n_freqs


def test_key_padding_mask_hides_padded_frames():
    model = tiny_model()
    x = windows(batch=2, frames=16)
    padded = torch.cat([x, 100 * torch.randn(2, 4, 8)], dim=1)
    pad_mask = torch.zeros(2, 20, dtype=torch.bool)
    pad_mask[:, 16:] = True
    with torch.no_grad():
        reference = model.encoder(x)
        hidden = model.encoder(padded, key_padding_mask=pad_mask)
    torch.testing.assert_close(hidden[:, :16], reference, atol=1e-5, rtol=1e-5)


def test_model_config_validation_and_round_trip():
    cfg = ModelConfig.preset("small", dropout=0.0)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()
    with pytest.raises(UsageError):
        ModelConfig(d_model=100, n_heads=12)
    with pytest.raises(UsageError):
        ModelConfig.preset("huge")
    with pytest.raises(UsageError):
        ModelConfig.from_dict({"d_model": 64, "bogus": 1})


def test_build_model_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_model(TINY, seed=7)
    after = torch.rand(1)
    b = build_model(TINY, seed=7)
    assert torch.equal(after, expected_next)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


# ------------------------------------------------------------------------------------------------ masking
def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the True runs in a 1-D bool array."""
    padded = np.concatenate([[False], row, [False]]).astype(int)
    starts = np.flatnonzero(np.diff(padded) == 1)
    ends = np.flatnonzero(np.diff(padded) == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


def test_masking_is_reproducible_with_a_generator():
    x = windows(batch=4, frames=50, freqs=20)
    a = mask_spectrogram(x, MaskConfig(p_time=0.1, p_freq=0.1), torch.Generator().manual_seed(5))
    b = mask_spectrogram(x, MaskConfig(p_time=0.1, p_freq=0.1), torch.Generator().manual_seed(5))
    c = mask_spectrogram(x, MaskConfig(p_time=0.1, p_freq=0.1), torch.Generator().manual_seed(6))
    assert torch.equal(a.masked, b.masked) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.mask, c.mask)
    single = mask_spectrogram(x[0], MaskConfig(p_time=0.1, p_freq=0.1), torch.Generator().manual_seed(5))
    assert single.masked.shape == (50, 20) and single.mask.shape == (50, 20)


def test_mask_marks_exactly_the_selected_cells_time_or_frequency():
    x = torch.rand(64, 60, 16, generator=torch.Generator().manual_seed(1)) + 1.0   # all distinct, non-zero
    out = mask_spectrogram(x, MaskConfig(p_time=0.08, p_freq=0.1), torch.Generator().manual_seed(2))
    union = out.time_mask[:, :, None] | out.freq_mask[:, None, :]
    assert torch.equal(out.mask, union)
    assert out.freq_mask.any() and out.time_mask.any()
    # Frequency-masked cells are marked even in frames no time span touches (the published bug did not).
    freq_only = out.freq_mask[:, None, :] & ~out.time_mask[:, :, None]
    assert freq_only.any() and out.mask[freq_only].all()
    # Unmasked cells are untouched; every altered cell is in the mask.
    assert torch.equal(out.masked[~out.mask], x[~out.mask])
    altered = out.masked != x
    assert not (altered & ~out.mask).any()
    assert torch.all(out.masked[out.zeroed] == 0)
    assert not (out.zeroed & ~out.mask).any() and not (out.replaced & ~out.mask).any()
    # Some selected cells stay unchanged (the 10% "keep" spans) and are still scored.
    assert (out.mask & ~altered).any()


def test_every_example_gets_a_masked_cell():
    x = windows(batch=32, frames=12, freqs=6)
    out = mask_spectrogram(x, MaskConfig(p_time=0.0, p_freq=0.0), torch.Generator().manual_seed(0))
    assert out.mask.flatten(1).any(dim=1).all()
    lengths = [length for b in range(32) for _, length in _runs(out.time_mask[b].numpy())]
    assert len(lengths) == 32 and all(1 <= n <= 5 for n in lengths)


def test_span_lengths_and_fates_statistics():
    gen = torch.Generator().manual_seed(11)
    x = torch.rand(1500, 100, 12, generator=gen) + 1.0
    out = mask_spectrogram(x, MaskConfig(p_time=0.05, p_freq=0.0), gen)
    lengths, fates = [], {"zero": 0, "copy": 0, "keep": 0}
    for b in range(x.shape[0]):
        for start, length in _runs(out.time_mask[b].numpy()):
            lengths.append(length)
            rows = out.masked[b, start:start + length]
            if torch.all(rows == 0):
                fates["zero"] += 1
            elif torch.equal(rows, x[b, start:start + length]):
                fates["keep"] += 1
            else:
                fates["copy"] += 1
                # a copy of the same-length span starting at another frame of the same window
                sources = [r for r in range(100 - length + 1)
                           if r != start and torch.equal(rows, x[b, r:r + length])]
                assert sources, "a replaced time span must be copied from elsewhere in time"
    counts = np.bincount(lengths, minlength=7)
    assert counts[0] == 0 and counts[6:].sum() == 0 and all(counts[1:6] > 0.15 * len(lengths))
    n = sum(fates.values())
    assert n > 3000
    assert abs(fates["zero"] / n - 0.8) < 0.03
    assert abs(fates["copy"] / n - 0.1) < 0.03
    assert abs(fates["keep"] / n - 0.1) < 0.03

    out = mask_spectrogram(x[:400], MaskConfig(p_time=0.0, p_freq=0.1), gen)
    f_lengths, copies = [], 0
    for b in range(400):
        for start, length in _runs(out.freq_mask[b].numpy()):
            f_lengths.append(length)
            cols = out.masked[b, :, start:start + length]
            if not torch.all(cols == 0) and not torch.equal(cols, x[b, :, start:start + length]):
                copies += 1
                assert any(torch.equal(cols, x[b, :, r:r + length]) for r in range(12 - length + 1) if r != start)
    assert set(f_lengths) == {1, 2} and copies > 0


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), frames=st.integers(6, 40), freqs=st.integers(3, 12),
       p_time=st.floats(0, 1), p_freq=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_masking_invariants_hold_for_any_shape_and_probability(batch, frames, freqs, p_time, p_freq, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, frames, freqs, generator=gen) + 1.0
    out = mask_spectrogram(x, MaskConfig(p_time=p_time, p_freq=p_freq), gen)
    assert torch.equal(out.mask, out.time_mask[:, :, None] | out.freq_mask[:, None, :])
    assert torch.equal(out.masked[~out.mask], x[~out.mask])
    assert out.mask.flatten(1).any(dim=1).all()
    for b in range(batch):
        assert all(1 <= n <= 5 for _, n in _runs(out.time_mask[b].numpy()))
        assert all(1 <= n <= 2 for _, n in _runs(out.freq_mask[b].numpy()))


def per_example_masks(x: torch.Tensor, cfg: MaskConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The masking rule spelled out one example and one span at a time (the former implementation's loop),
    from the same random draws in the same order: (masked, mask)."""
    n_batch, n_time, n_freq = x.shape
    nt, nf = n_time - cfg.time_span_max + 1, n_freq - cfg.freq_span_max + 1
    t_draw = torch.rand(n_batch, nt, generator=gen) < cfg.p_time
    t_len = torch.randint(cfg.time_span_min, cfg.time_span_max + 1, (n_batch, nt), generator=gen)
    t_dice = torch.rand(n_batch, nt, generator=gen)
    t_src = torch.randint(1, nt, (n_batch, nt), generator=gen) if nt > 1 else torch.zeros(n_batch, nt, dtype=int)
    f_draw = torch.rand(n_batch, nf, generator=gen) < cfg.p_freq
    f_len = torch.randint(cfg.freq_span_min, cfg.freq_span_max + 1, (n_batch, nf), generator=gen)
    f_dice = torch.rand(n_batch, nf, generator=gen)
    f_src = torch.randint(1, nf, (n_batch, nf), generator=gen) if nf > 1 else torch.zeros(n_batch, nf, dtype=int)
    forced = torch.randint(0, nt, (n_batch,), generator=gen)
    masked, mask = x.clone(), torch.zeros(x.shape, dtype=torch.bool)

    def greedy(draw, lengths):
        spans, end = [], -1
        for start in torch.nonzero(draw).flatten().tolist():
            if start > end:
                spans.append((start, int(lengths[start])))
                end = start + int(lengths[start])
        return spans

    for b in range(n_batch):
        t_spans, f_spans = greedy(t_draw[b], t_len[b]), greedy(f_draw[b], f_len[b])
        if not t_spans and not f_spans:
            t_spans = [(int(forced[b]), int(t_len[b, forced[b]]))]
        after_time = x[b].clone()
        zero_rows, zero_cols = [], []
        for start, length in t_spans:
            mask[b, start:start + length] = True
            if t_dice[b, start] < cfg.zero_fraction:
                zero_rows.append((start, length))
            elif t_dice[b, start] < cfg.zero_fraction + cfg.replace_fraction:
                source = (start + int(t_src[b, start])) % nt
                after_time[start:start + length] = x[b, source:source + length]
        result = after_time.clone()
        for start, length in f_spans:
            mask[b, :, start:start + length] = True
            if f_dice[b, start] < cfg.zero_fraction:
                zero_cols.append((start, length))
            elif f_dice[b, start] < cfg.zero_fraction + cfg.replace_fraction:
                source = (start + int(f_src[b, start])) % nf
                result[:, start:start + length] = after_time[:, source:source + length]
        for start, length in zero_rows:
            result[start:start + length] = cfg.fill_value
        for start, length in zero_cols:
            result[:, start:start + length] = cfg.fill_value
        masked[b] = result
    return masked, mask


@pytest.mark.parametrize("cfg", [MaskConfig(), MaskConfig(p_time=0.3, p_freq=0.4), MaskConfig(p_time=0.0, p_freq=0.0),
                                 MaskConfig(p_time=1.0, p_freq=1.0, freq_span_max=3, replace_fraction=0.2)])
def test_vectorised_masking_equals_the_per_example_rule(cfg):
    """The batched masking (no per-example loop) gives exactly the masks of the rule applied example by example."""
    for seed in range(6):
        x = torch.rand(1 + seed % 4, 30 + 7 * seed, 9, generator=torch.Generator().manual_seed(100 + seed)) + 1.0
        out = mask_spectrogram(x, cfg, torch.Generator().manual_seed(seed))
        masked, mask = per_example_masks(x, cfg, torch.Generator().manual_seed(seed))
        assert torch.equal(out.mask, mask) and torch.equal(out.masked, masked), (cfg, seed)


def test_masking_rejects_too_short_windows():
    with pytest.raises(UsageError):
        mask_spectrogram(torch.zeros(2, 5, 8), MaskConfig(), torch.Generator())


# ---------------------------------------------------------------------------------------------------- loss
def test_loss_value_by_hand():
    target = torch.tensor([[0.5, 2.0], [-3.0, 0.0]])
    pred = torch.tensor([[0.0, 1.0], [-1.0, 5.0]])
    mask = torch.tensor([[True, True], [True, False]])
    parts = masked_reconstruction_loss(pred, target, mask)
    l1 = (0.5 + 1.0 + 2.0) / 3
    content = (1.0 + 2.0) / 2          # cells with |target| > 1: 2.0 and -3.0
    assert math.isclose(parts.loss.item(), l1 + 2 * content, rel_tol=1e-6)
    assert math.isclose(parts.l1.item(), l1, rel_tol=1e-6)
    assert int(parts.n_masked) == 3 and int(parts.n_content) == 2


def test_loss_is_finite_when_no_masked_cell_exceeds_one():
    """The published criterion returned NaN here (mean of an empty selection)."""
    target = 0.5 * torch.rand(2, 10, 4)                 # |target| <= 0.5 everywhere
    pred = torch.randn(2, 10, 4, requires_grad=True)
    mask = torch.zeros(2, 10, 4, dtype=torch.bool)
    mask[:, 3:5] = True
    parts = masked_reconstruction_loss(pred, target, mask)
    assert torch.isfinite(parts.loss) and parts.content_l1.item() == 0.0 and int(parts.n_content) == 0
    torch.testing.assert_close(parts.loss, (pred - target).abs()[mask].mean())
    parts.loss.backward()
    assert torch.isfinite(pred.grad).all()
    # no masked cell at all: 0, not NaN
    empty = masked_reconstruction_loss(pred, target, torch.zeros_like(mask))
    assert empty.loss.item() == 0.0


def test_loss_scores_frequency_masked_cells_and_ignores_unmasked_ones():
    gen = torch.Generator().manual_seed(3)
    target = 2 * torch.randn(4, 40, 16, generator=gen)
    out = mask_spectrogram(target, MaskConfig(p_time=0.0, p_freq=0.2), gen)
    assert out.freq_mask.any()
    pred = torch.randn(4, 40, 16, generator=gen)
    base = masked_reconstruction_loss(pred, target, out.mask).loss

    unmasked = ~out.mask
    bumped = pred.clone()
    bumped[unmasked] += 1000.0
    bumped_nan = pred.clone()
    bumped_nan[unmasked] = float("nan")
    assert masked_reconstruction_loss(bumped, target, out.mask).loss.item() == base.item()
    assert masked_reconstruction_loss(bumped_nan, target, out.mask).loss.item() == base.item()

    freq_cells = out.freq_mask[:, None, :].expand_as(target) & ~out.time_mask[:, :, None].expand_as(target)
    assert freq_cells.any()
    moved = pred.clone()
    moved[freq_cells] += 5.0
    assert masked_reconstruction_loss(moved, target, out.mask).loss.item() > base.item() + 1.0

    pred.requires_grad_(True)
    masked_reconstruction_loss(pred, target, out.mask).loss.backward()
    assert torch.all(pred.grad[unmasked] == 0) and torch.all(pred.grad[freq_cells] != 0)


# -------------------------------------------------------------------------------------- our checkpoints
def test_safetensors_round_trip_gives_same_outputs(tmp_path):
    model = tiny_model()
    x = windows()
    extra = {"steps": 12, "final_train_loss": 0.5, "train_files": ["sub-01_desc-superlet_spectrogram.npy"]}
    out_dir = save_checkpoint(tmp_path / "ckpt", model, extra=extra)
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["config.json", "model.safetensors", "model_card.md"]      # no temporary leftovers
    loaded, config, meta = load_checkpoint(out_dir)
    assert config == TINY and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    sha = weights_sha256(out_dir / "model.safetensors")
    assert meta["weights_sha256"] == sha and meta["training"]["steps"] == 12
    card = (out_dir / "model_card.md").read_text()
    assert sha in card and "sub-01_desc-superlet_spectrogram.npy" in card and "bids_brainbert" in card
    assert (out_dir / "model.safetensors").read_bytes()[:2] != b"PK"          # not a torch zip/pickle
    # the weights file alone also works (its header carries the model config)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "weights.safetensors").write_bytes((out_dir / "model.safetensors").read_bytes())
    again, config2, _ = load_checkpoint(alone / "weights.safetensors")
    assert config2 == TINY
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), atol=0, rtol=0)


def test_corrupt_and_mismatched_checkpoints_raise_clear_errors(tmp_path):
    out_dir = save_checkpoint(tmp_path / "ckpt", tiny_model())
    weights = out_dir / "model.safetensors"
    good = weights.read_bytes()

    weights.write_bytes(good[:-7] + b"\x00" * 7)          # flipped bytes: the hash no longer matches
    with pytest.raises(CheckpointError, match="SHA-256") as info:
        load_checkpoint(out_dir)
    assert str(weights) in str(info.value) and info.value.exit_code == 65
    assert isinstance(info.value, BidsBrainbertError)

    weights.write_bytes(good[: len(good) // 2])           # truncated
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(out_dir, verify=False)

    weights.write_bytes(good)
    meta = json.loads((out_dir / "config.json").read_text())
    meta["model"]["d_ff"] = 64                             # config and weights disagree
    (out_dir / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(out_dir)

    (out_dir / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(out_dir)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing")


@pytest.mark.parametrize("kind", ["adamw", "lamb"])
def test_optimizer_state_round_trip_without_pickle(tmp_path, kind):
    model = tiny_model()
    params = list(model.parameters())
    opt = Lamb(params, lr=1e-3) if kind == "lamb" else torch.optim.AdamW(params, lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        model(windows()).pow(2).mean().backward()
        opt.step()
    save_checkpoint(tmp_path, model, optimizer=opt, training_state={"step": 2}, training_tensors={
        "history": torch.tensor([1.0, 0.5])})
    assert json.loads((tmp_path / "training_state.json").read_text())["state"]["step"] == 2
    fresh = tiny_model()
    opt2 = Lamb(fresh.parameters(), lr=1e-3) if kind == "lamb" else torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    state, tensors = load_training_state(tmp_path, opt2)
    assert state == {"step": 2} and torch.equal(tensors["history"], torch.tensor([1.0, 0.5]))
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for key, value in a["state"][pid].items():
            assert torch.equal(value, b["state"][pid][key])
    wrong = torch.optim.SGD(fresh.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="optimizer"):
        load_training_state(tmp_path, wrong)


# ------------------------------------------------------------------------------------- published format
class _PublishedInput(nn.Module):
    """The published input stage's attribute names: in_proj, positional_encoding.pe, layer_norm."""

    def __init__(self, d: int, n_freqs: int, max_len: int = 5000):
        super().__init__()
        self.in_proj = nn.Linear(n_freqs, d)
        self.positional_encoding = nn.Module()
        t = torch.arange(max_len, dtype=torch.float64)[:, None]
        k = torch.arange(0, d, 2, dtype=torch.float64)
        table = torch.zeros(max_len, d, dtype=torch.float64)
        table[:, 0::2] = torch.sin(t * torch.exp(-k * math.log(10000.0) / d))
        table[:, 1::2] = torch.cos(t * torch.exp(-k * math.log(10000.0) / d))
        self.positional_encoding.register_buffer("pe", table.float()[None])
        self.layer_norm = nn.LayerNorm(d)


class _PublishedHead(nn.Module):
    def __init__(self, d: int, n_freqs: int):
        super().__init__()
        self.hidden_layer = nn.Linear(d, d)
        self.layer_norm = nn.LayerNorm(d)
        self.output = nn.Linear(d, n_freqs)


class PublishedLayout(nn.Module):
    """A stand-in with the published module tree (input_encoding, transformer, spec_prediction_head), run the
    published way: sequence-first transformer, positions added before the input LayerNorm."""

    def __init__(self, d: int = 32, n_freqs: int = 8, n_layers: int = 2, nhead: int = 4, d_ff: int = 48):
        super().__init__()
        # the original's model_cfg for these sizes (not weights: absent from the state dict)
        self.model_cfg = {"name": "masked_tf_model", "hidden_dim": d, "layer_dim_feedforward": d_ff,
                          "layer_activation": "gelu", "nhead": nhead, "encoder_num_layers": n_layers,
                          "input_dim": n_freqs}
        self.input_encoding = _PublishedInput(d, n_freqs)
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=nhead, dim_feedforward=d_ff, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, num_layers=n_layers, enable_nested_tensor=False)
        self.spec_prediction_head = _PublishedHead(d, n_freqs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.input_encoding
        h = enc.in_proj(x) + enc.positional_encoding.pe[:, : x.shape[1]]
        h = enc.layer_norm(h)
        hidden = self.transformer(h.transpose(0, 1)).transpose(0, 1)
        head = self.spec_prediction_head
        return hidden, head.output(head.layer_norm(nn.functional.gelu(head.hidden_layer(hidden))))


def save_published_layout(path: Path, layout: PublishedLayout) -> Path:
    """``layout``'s weights in the released file's format (keys model/model_cfg/optim/scheduler)."""
    torch.save({"model": layout.state_dict(), "optim": {}, "scheduler": None, "model_cfg": layout.model_cfg}, path)
    return path


def published_checkpoint(path: Path, model_cfg=None, seed: int = 0) -> PublishedLayout:
    torch.manual_seed(seed)
    reference = PublishedLayout()
    with torch.no_grad():
        for param in reference.parameters():
            param.add_(0.1 * torch.randn_like(param))
    reference.eval()
    optim = torch.optim.AdamW(reference.parameters(), lr=1e-4)
    reference(windows()).__getitem__(1).sum().backward()
    optim.step()
    if model_cfg is None:
        model_cfg = {"name": "masked_tf_model", "hidden_dim": 32, "layer_dim_feedforward": 48,
                     "layer_activation": "gelu", "nhead": 4, "encoder_num_layers": 2, "input_dim": 8}
    torch.save({"model": reference.state_dict(), "model_cfg": model_cfg, "optim": optim.state_dict(),
                "scheduler": None}, path)
    return reference


def test_published_checkpoint_maps_onto_our_module(tmp_path):
    path = tmp_path / "stft_large_pretrained.pth"
    reference = published_checkpoint(path)
    assert "input_encoding.positional_encoding.pe" in reference.state_dict()
    model = load_published_checkpoint(path)
    assert isinstance(model, BrainBertPretrainModel) and not model.training
    assert model.config.d_model == 32 and model.config.n_layers == 2 and model.config.n_heads == 4
    x = windows(batch=2, frames=25)
    with torch.no_grad():
        ref_hidden, ref_out = reference(x)
        torch.testing.assert_close(model.encoder(x), ref_hidden, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x), ref_out, atol=1e-5, rtol=1e-5)
    # load_checkpoint dispatches .pth files to the same loader
    again, config, meta = load_checkpoint(path)
    assert config == model.config and meta["format"] == "brainbert-published"
    assert meta["model_cfg"]["hidden_dim"] == 32


def test_published_checkpoint_sizes_come_from_the_weights(tmp_path):
    path = tmp_path / "heads_only.pth"
    reference = published_checkpoint(path, model_cfg={"nhead": 4})    # everything else read off the shapes
    model = load_published_checkpoint(path)
    assert (model.config.d_model, model.config.d_ff, model.config.n_layers) == (32, 48, 2)
    x = windows(batch=1, frames=10)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x)[1], atol=1e-5, rtol=1e-5)
    # with no config at all the head count defaults to the published 12, which cannot split 32 dimensions
    bare = tmp_path / "bare.pth"
    published_checkpoint(bare, model_cfg={})
    with pytest.raises(CheckpointError, match="n_heads"):
        load_published_checkpoint(bare)


def test_published_checkpoint_errors_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02not really a checkpoint" * 10)
    with pytest.raises(CheckpointError) as info:
        load_published_checkpoint(corrupt)
    assert str(corrupt) in str(info.value) and "\n" not in str(info.value)

    wrong_cfg = tmp_path / "wrong_cfg.pth"
    published_checkpoint(wrong_cfg, model_cfg={"hidden_dim": 64, "nhead": 4})
    with pytest.raises(CheckpointError, match="hidden_dim"):
        load_published_checkpoint(wrong_cfg)

    wrong_shape = tmp_path / "wrong_shape.pth"
    reference = PublishedLayout()
    state = reference.state_dict()
    state["transformer.layers.1.linear1.weight"] = torch.zeros(40, 32)
    torch.save({"model": state, "model_cfg": {"nhead": 4}}, wrong_shape)
    with pytest.raises(CheckpointError, match="shape") as info:
        load_published_checkpoint(wrong_shape)
    assert str(wrong_shape) in str(info.value)

    extra_key = tmp_path / "extra_key.pth"
    state = PublishedLayout().state_dict()
    state["cls_token"] = torch.zeros(32)
    torch.save({"model": state, "model_cfg": {"nhead": 4}}, extra_key)
    with pytest.raises(CheckpointError, match="cls_token"):
        load_published_checkpoint(extra_key)

    not_brainbert = tmp_path / "other.pth"
    torch.save({"model": {"conv.weight": torch.zeros(3, 3)}}, not_brainbert)
    with pytest.raises(CheckpointError, match="BrainBERT"):
        load_published_checkpoint(not_brainbert)


class _Foreign:
    """Stands for an arbitrary pickled object a checkpoint should never get to construct."""

    def __init__(self):
        self.payload = 1


def test_published_checkpoint_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "foreign.pth"
    state = PublishedLayout().state_dict()
    torch.save({"model": state, "model_cfg": {"nhead": 4}, "optim": _Foreign()}, path)
    with pytest.raises(CheckpointError, match="refusing"):
        load_published_checkpoint(path)


@pytest.fixture
def fake_omegaconf(monkeypatch):
    """A minimal stand-in for the omegaconf package whose DictConfig pickles its content as a plain dict (the
    real package, in the test extra, is exercised in test_security.py)."""
    package = types.ModuleType("omegaconf")
    submodule = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content):
            self._content = dict(content)

    DictConfig.__module__ = "omegaconf.dictconfig"
    DictConfig.__qualname__ = "DictConfig"
    submodule.DictConfig = DictConfig

    class OmegaConf:
        @staticmethod
        def to_container(cfg, resolve=True):
            return dict(cfg._content)

    package.OmegaConf, package.DictConfig, package.dictconfig = OmegaConf, DictConfig, submodule
    monkeypatch.setitem(sys.modules, "omegaconf", package)
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", submodule)
    return DictConfig


def test_published_checkpoint_with_omegaconf_config(tmp_path, fake_omegaconf, monkeypatch):
    cfg = fake_omegaconf({"hidden_dim": 32, "nhead": 4, "layer_dim_feedforward": 48, "encoder_num_layers": 2,
                          "input_dim": 8, "layer_activation": "gelu"})
    path = tmp_path / "omega.pth"
    reference = published_checkpoint(path, model_cfg=cfg)
    # read as plain data through inert stand-ins: omegaconf importable or not, it is never imported
    monkeypatch.setitem(sys.modules, "omegaconf", None)
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", None)
    model = load_published_checkpoint(path)
    assert model.config.n_heads == 4
    x = windows(batch=1, frames=12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x)[1], atol=1e-5, rtol=1e-5)
    # the stand-ins did not leak into torch's global safe list
    assert "omegaconf" not in str(torch.serialization.get_safe_globals())
