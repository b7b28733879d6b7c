"""Training windows, splits and the pretraining loop (loss, reproducibility, resume, DDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bids_brainbert.errors import RecordingError, UsageError
from bids_brainbert.model import ModelConfig, load_checkpoint
from bids_brainbert.training import (PretrainConfig, SpectrogramWindows, latest_checkpoint, lr_factor, pretrain,
                                     split_paths, zscore_frequencies)
from bids_brainbert.training import windows as windows_module

REPO = Path(__file__).resolve().parents[1]
TINY = ModelConfig(n_freqs=8, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_frames=64)


def write_derivative(path: Path, data: np.ndarray, rate: float = 10.0, edge: int = 0) -> Path:
    """A spectrogram derivative as the pipeline writes it: (channels, frames, freqs) float32 + JSON sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.ascontiguousarray(data, dtype=np.float32)
    np.save(path, data)
    path.with_suffix(".json").write_text(json.dumps({
        "SamplingFrequency": rate, "EdgeFrames": edge, "Shape": list(data.shape),
        "FrequenciesHz": list(np.linspace(1, 40, data.shape[2])), "DataSha256": "not-checked"}))
    return path


def learnable_set(root: Path, n_files: int = 3, channels: int = 3, frames: int = 400, freqs: int = 8,
                  seed: int = 0) -> list[Path]:
    """Travelling waves across time and frequency with a random phase per channel: masked cells are
    predictable from their neighbours, so the reconstruction loss can fall quickly."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[None, :, None]
    f = np.arange(freqs)[None, None, :]
    paths = []
    for i in range(n_files):
        phase = rng.uniform(0, 2 * np.pi, (channels, 1, 1))
        period = rng.uniform(12, 20, (channels, 1, 1))
        data = 1e-5 * (1.2 + np.sin(2 * np.pi * t / period + phase + 0.4 * f)
                       + 0.05 * rng.standard_normal((channels, frames, freqs)))
        paths.append(write_derivative(root / f"sub-{i:02d}" / f"sub-{i:02d}_task-rest_run-01_desc-superlet_"
                                      f"spectrogram.npy", data, rate=10.0, edge=5))
    return paths


def tiny_config(**overrides) -> PretrainConfig:
    settings = dict(model=TINY, batch_size=16, steps=60, lr=3e-3, warmup_fraction=0.05, checkpoint_every=15,
                    window_s=3.0, mask_p=0.1, val_batches=2, seed=0, device="cpu")
    settings.update(overrides)
    return PretrainConfig(**settings)


def final_weights(result) -> dict[str, torch.Tensor]:
    return load_file(str(result.checkpoint_dir / "model.safetensors"))


# ------------------------------------------------------------------------------------------------ windows
def test_windows_index_edges_stride_and_content(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.uniform(0, 1e-5, (2, 103, 6)).astype(np.float32)
    path = write_derivative(tmp_path / "sub-01_run-01_desc-superlet_spectrogram.npy", data, rate=10.0, edge=4)
    ds = SpectrogramWindows([path], window_s=2.0)            # 20 frames; usable frames 4..98 -> 95 frames
    assert ds.window_frames == 20 and len(ds) == 2 * 4
    assert ds.recordings[0].starts == (4, 24, 44, 64)
    file, channel, start = ds.locate(5)
    assert (file, channel, start) == (path, 1, 24)
    item = ds[5]
    assert item.dtype == torch.float32 and item.shape == (20, 6)
    expected = data[1, 24:44].astype(np.float64)
    expected = (expected - expected.mean(0)) / (expected.std(0) + 1e-6 * expected.std(0).mean())
    np.testing.assert_allclose(item.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(item.numpy().mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(item.numpy().std(0), 1, atol=1e-3)

    overlapping = SpectrogramWindows([path], window_s=2.0, stride_s=1.0)
    assert overlapping.recordings[0].starts == tuple(range(4, 80, 10))
    raw = SpectrogramWindows([path], window_s=2.0, normalize=False, skip_edges=False)
    assert raw.recordings[0].starts == (0, 20, 40, 60, 80)
    np.testing.assert_array_equal(raw[1].numpy(), data[0, 20:40])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_windows_read_only_slices_of_memory_maps(tmp_path, monkeypatch):
    paths = learnable_set(tmp_path, n_files=2)
    calls = []
    real_load = np.load

    def spy(file, *args, **kwargs):
        calls.append(kwargs.get("mmap_mode"))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(windows_module.np, "load", spy)
    ds = SpectrogramWindows(paths, window_s=3.0)
    for i in range(0, len(ds), 7):
        ds[i]
    assert calls and all(mode == "r" for mode in calls)


def test_batched_reads_equal_single_windows(tmp_path):
    """read_windows (what a loader worker calls per step) = read_window stacked, in the order asked for."""
    paths = learnable_set(tmp_path, n_files=3)
    data = np.load(paths[1], mmap_mode="r+")
    data[0, 40:42, 3] = np.nan                       # non-finite cells are zeroed in both paths
    data.flush()
    ds = SpectrogramWindows(paths, window_s=3.0, stride_s=1.3)
    order = np.random.default_rng(0).permutation(len(ds))[:40].tolist() + [0, len(ds) - 1, 0]
    batch = ds.read_windows(order)
    assert batch.dtype == np.float32 and batch.shape == (len(order), ds.window_frames, ds.n_freqs)
    np.testing.assert_array_equal(batch, np.stack([ds.read_window(i) for i in order]))
    assert np.isfinite(batch).all()
    per_window = np.stack([zscore_frequencies(w) for w in np.random.default_rng(1).gamma(2.0, 1e-6, (5, 30, 8))])
    np.testing.assert_allclose(zscore_frequencies(np.random.default_rng(1).gamma(2.0, 1e-6, (5, 30, 8))),
                               per_window, rtol=0, atol=0)
    with pytest.raises(IndexError):
        ds.read_windows([0, len(ds)])


def test_zscore_is_scale_free_and_safe_on_flat_channels():
    rng = np.random.default_rng(0)
    window = rng.uniform(0, 1, (50, 4))
    np.testing.assert_allclose(zscore_frequencies(window * 1e-6), zscore_frequencies(window), atol=1e-6)
    flat = zscore_frequencies(np.zeros((50, 4)))
    assert np.all(flat == 0)
    partly = window.copy()
    partly[:, 2] = 3e-6
    out = zscore_frequencies(partly)
    assert np.all(np.isfinite(out)) and np.all(out[:, 2] == 0)


def test_windows_reject_inconsistent_inputs(tmp_path):
    a = write_derivative(tmp_path / "sub-01_run-01_spectrogram.npy", np.ones((1, 100, 8)), rate=10.0)
    b = write_derivative(tmp_path / "sub-02_run-01_spectrogram.npy", np.ones((1, 100, 8)), rate=20.0)
    with pytest.raises(UsageError, match="frame rates"):
        SpectrogramWindows([a, b], window_s=2.0)
    c = tmp_path / "sub-03_run-01_spectrogram.npy"
    np.save(c, np.ones((1, 100, 8), dtype=np.float32))
    with pytest.raises(RecordingError, match="sidecar"):
        SpectrogramWindows([c])
    d = write_derivative(tmp_path / "sub-04_run-01_spectrogram.npy", np.ones((2, 100, 8)))
    meta = json.loads(d.with_suffix(".json").read_text())
    meta["Shape"] = [3, 100, 8]
    d.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match="Shape|shape"):
        SpectrogramWindows([d])


def test_split_by_run_and_by_subject_is_deterministic(tmp_path):
    paths = [tmp_path / f"sub-{s:02d}_ses-01_task-x_run-{r:02d}_desc-superlet_spectrogram.npy"
             for s in range(1, 7) for r in range(1, 4)]
    train, val = split_paths(paths, 0.2, by="run", seed=3)
    assert len(val) == round(0.2 * 18) and set(train) | set(val) == set(paths) and not set(train) & set(val)
    assert split_paths(list(reversed(paths)), 0.2, by="run", seed=3) == (train, val)
    assert split_paths(paths, 0.2, by="run", seed=4) != (train, val)

    train_s, val_s = split_paths(paths, 0.34, by="subject", seed=0)
    val_subjects = {p.name[:6] for p in val_s}
    assert len(val_subjects) == 2 and not val_subjects & {p.name[:6] for p in train_s}
    assert len(val_s) == 6
    assert split_paths(paths, 0.0, by="subject") == (sorted(paths, key=str), [])
    with pytest.raises(RecordingError):
        split_paths([tmp_path / "no_subject.npy", tmp_path / "x.npy"], 0.5, by="subject")


def test_lr_schedule_warmup_then_step_decay():
    cfg = PretrainConfig(steps=1000, lr=1e-4, warmup_fraction=0.025, decay="step")
    assert lr_factor(0, cfg) == pytest.approx(1 / 25)
    assert lr_factor(24, cfg) == pytest.approx(1.0)
    assert lr_factor(25, cfg) == pytest.approx(1.0)
    step_size = (1000 - 25) * 0.01
    assert lr_factor(25 + int(step_size) + 1, cfg) == pytest.approx(0.99)
    assert lr_factor(999, cfg) == pytest.approx(0.99 ** 99, rel=1e-6)
    assert lr_factor(999, PretrainConfig(steps=1000, decay="linear")) < 0.01
    with pytest.raises(UsageError):
        PretrainConfig(optimizer="sgd")


# ----------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("derivatives")
    paths = learnable_set(root, n_files=4)
    return paths[:3], paths[3:]


@pytest.fixture(scope="module")
def reference_run(dataset, tmp_path_factory):
    train, val = dataset
    return pretrain(train, val, tmp_path_factory.mktemp("reference"), tiny_config(), progress=False)


def test_training_loss_decreases_and_files_are_written(reference_run):
    losses = reference_run.train_losses
    assert len(losses) == 60 and all(np.isfinite(losses))
    assert np.mean(losses[-8:]) < 0.75 * np.mean(losses[:8])
    assert reference_run.val_steps == [15, 30, 45, 60]
    assert reference_run.val_losses[-1] < reference_run.val_losses[0]
    ckpt = reference_run.checkpoint_dir
    assert ckpt.name == "step-00000060" and latest_checkpoint(reference_run.output_dir) == ckpt
    assert reference_run.loss_curve == ckpt / "loss_curve.png"
    assert reference_run.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = sorted(p.name for p in (reference_run.output_dir / "checkpoints").iterdir())
    assert kept == ["latest.json", "step-00000045", "step-00000060"]      # keep_checkpoints=2, no temp dirs
    model, config, meta = load_checkpoint(ckpt)
    assert config == TINY and meta["training"]["steps"] == 60
    assert meta["training"]["final_val_loss"] == pytest.approx(reference_run.val_losses[-1], abs=1e-5)
    assert len(meta["training"]["train_files"]) == 3
    card = (ckpt / "model_card.md").read_text()
    assert meta["weights_sha256"] in card and "sub-00_task-rest_run-01_desc-superlet_spectrogram.npy" in card


def test_same_seed_gives_identical_weights(dataset, reference_run, tmp_path):
    train, val = dataset
    again = pretrain(train, val, tmp_path / "again", tiny_config(), progress=False)
    assert again.train_losses == reference_run.train_losses
    a, b = final_weights(reference_run), final_weights(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = pretrain(train, val, tmp_path / "other", tiny_config(seed=1, steps=5, checkpoint_every=5),
                     progress=False)
    assert other.train_losses[:5] != reference_run.train_losses[:5]


def test_resume_after_interruption_matches_uninterrupted_run(dataset, reference_run, tmp_path):
    train, val = dataset
    out = tmp_path / "interrupted"

    class Stop(Exception):
        pass

    def stop_at_38(info):
        if info.step == 38:
            raise Stop

    with pytest.raises(Stop):
        pretrain(train, val, out, tiny_config(), progress=False, on_step=stop_at_38)
    assert latest_checkpoint(out).name == "step-00000030"
    with pytest.raises(UsageError, match="earlier run"):
        pretrain(train, val, out, tiny_config(), resume=False, progress=False)
    resumed = pretrain(train, val, out, tiny_config(), progress=False)
    assert resumed.resumed_from_step == 30
    assert resumed.train_losses == reference_run.train_losses
    assert resumed.val_losses == reference_run.val_losses
    a, b = final_weights(reference_run), final_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run resumes to nothing and returns the same result
    done = pretrain(train, val, out, tiny_config(), progress=False)
    assert done.checkpoint_dir == resumed.checkpoint_dir and done.train_losses == resumed.train_losses


def test_data_loader_workers_do_not_change_the_result(dataset, tmp_path):
    train, _ = dataset
    cfg = dict(steps=6, checkpoint_every=6)
    serial = pretrain(train, [], tmp_path / "serial", tiny_config(**cfg), progress=False)
    parallel = pretrain(train, [], tmp_path / "parallel", tiny_config(num_workers=2, **cfg), progress=False)
    assert serial.train_losses == parallel.train_losses
    a, b = final_weights(serial), final_weights(parallel)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lamb_optimizer_trains_and_resumes(dataset, tmp_path):
    train, _ = dataset
    cfg = tiny_config(optimizer="lamb", lr=1e-2, steps=30, checkpoint_every=10)
    full = pretrain(train, [], tmp_path / "full", cfg, progress=False)
    assert np.mean(full.train_losses[-6:]) < np.mean(full.train_losses[:6])

    def stop(info):
        if info.step == 15:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(train, [], tmp_path / "part", cfg, progress=False, on_step=stop)
    resumed = pretrain(train, [], tmp_path / "part", cfg, progress=False)
    a, b = final_weights(full), final_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_checkpoint_and_mismatched_inputs(dataset, reference_run, tmp_path):
    train, _ = dataset
    warm = pretrain(train, [], tmp_path / "warm", tiny_config(steps=3, checkpoint_every=3,
                                                              model=ModelConfig.preset("small")),
                    init_from=reference_run.checkpoint_dir, progress=True)
    assert load_checkpoint(warm.checkpoint_dir)[1] == TINY     # the size comes from the checkpoint
    assert np.mean(warm.train_losses) < np.mean(reference_run.train_losses[:3])
    wide = ModelConfig(n_freqs=12, d_model=32, n_layers=1, n_heads=4, d_ff=32)
    with pytest.raises(UsageError, match="frequencies"):
        pretrain(train, [], tmp_path / "wide", tiny_config(model=wide), progress=False)
    with pytest.raises(UsageError, match="batch"):
        pretrain(train[:1], [], tmp_path / "big", tiny_config(batch_size=1000), progress=False)


# ---------------------------------------------------------------------------------------------------- DDP
DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from bids_brainbert.model import ModelConfig
    from bids_brainbert.training import PretrainConfig, pretrain

    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    paths = sorted(data.rglob("*_spectrogram.npy"))
    seen = []
    cfg = PretrainConfig(model=ModelConfig(n_freqs=8, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_frames=64),
                         batch_size=16, steps=40, lr=3e-3, warmup_fraction=0.05, checkpoint_every=20,
                         window_s=3.0, mask_p=0.1, val_batches=2, seed=0, device="cpu")
    result = pretrain(paths[:3], paths[3:], out, cfg, progress=False,
                      on_step=lambda info: seen.append([info.step, info.epoch, info.indices]))
    rank = int(os.environ["RANK"])
    (out.parent / f"rank{rank}.json").write_text(json.dumps({
        "seen": seen, "losses": result.train_losses, "world_size": result.world_size,
        "checkpoint": str(result.checkpoint_dir), "val": result.val_losses}))
""")


def test_distributed_data_parallel_on_two_cpu_processes(dataset, reference_run, tmp_path):
    train, val = dataset
    data = train[0].parent.parent
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run" / "out"
    out.parent.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
           str(script), str(data), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out.parent / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    # both ranks see disjoint data: at every step, and over each epoch
    for (step0, epoch0, idx0), (step1, epoch1, idx1) in zip(ranks[0]["seen"], ranks[1]["seen"]):
        assert step0 == step1 and epoch0 == epoch1 and len(idx0) == len(idx1) == 16
        assert not set(idx0) & set(idx1)
    for epoch in {e for _, e, _ in ranks[0]["seen"]}:
        per_rank = [{i for _, e, idx in r["seen"] if e == epoch for i in idx} for r in ranks]
        assert not per_rank[0] & per_rank[1]
    # the logged losses are averaged over ranks, so both agree; and they fall
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 40
    losses = ranks[0]["losses"]
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:6])
    assert ranks[0]["val"] == ranks[1]["val"]
    # rank 0 alone wrote the checkpoints; same tensors and shapes as a single-process model
    ckpt = Path(ranks[0]["checkpoint"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.json", "step-00000020",
                                                                       "step-00000040"]
    model, config, meta = load_checkpoint(ckpt)
    assert config == TINY and meta["training"]["world_size"] == 2
    distributed = load_file(str(ckpt / "model.safetensors"))
    single = final_weights(reference_run)
    assert {k: tuple(v.shape) for k, v in distributed.items()} == {k: tuple(v.shape) for k, v in single.items()}
    assert any(not torch.equal(distributed[k], single[k]) for k in single)    # trained on other batches


def test_bf16_pretraining_follows_the_float32_loss_curve(dataset, reference_run, tmp_path):
    """--precision bfloat16: the same steps, a loss curve close to float32's, and the card says which ran."""
    train, val = dataset
    bf16 = pretrain(train, val, tmp_path / "bf16", tiny_config(precision="bfloat16"), progress=False)
    fp32 = np.asarray(reference_run.train_losses)
    losses = np.asarray(bf16.train_losses)
    assert len(losses) == len(fp32) and np.isfinite(losses).all()
    assert not np.array_equal(losses, fp32)                       # bf16 really ran
    assert np.abs(losses - fp32).max() < 0.05 * fp32.max()        # same data, masks and dropout: same curve
    assert np.mean(losses[-8:]) < 0.75 * np.mean(losses[:8])
    _, _, meta = load_checkpoint(bf16.checkpoint_dir)
    assert meta["training"]["precision"] == "bfloat16" and meta["training"]["precision_requested"] == "bfloat16"
    assert "- precision: bfloat16" in (bf16.checkpoint_dir / "model_card.md").read_text()
    assert "- precision: float32" in (reference_run.checkpoint_dir / "model_card.md").read_text()
    with pytest.raises(UsageError, match="precision"):
        tiny_config(precision="half")
