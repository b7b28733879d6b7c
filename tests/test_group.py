"""Group level: pretraining from the participant derivatives, checkpoints, embeddings, holdout, torchrun."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from bids_brainbert.bids.derivatives import sha256_of_file
from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.cli.run import main
from bids_brainbert.model import load_checkpoint

FAST = ["--train-steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--model-size", "small",
        "--train-window-s", "2", "--embedding-window-s", "2", "--skip-bids-validation", "--random-seed", "5",
        "--analysis", "pretrain", "--decoding-features", "embeddings"]
# the analyses (and the random-weights control, left out here for speed) are tested in test_decoding.py /
# test_reports.py


def run(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def group_output(demo_derivatives, tmp_path_factory):
    root, out, truth = demo_derivatives
    copy = tmp_path_factory.mktemp("group") / "out"
    shutil.copytree(out, copy)
    assert run(root, copy, "group", *FAST) == 0
    return root, copy, truth


def test_group_pretrains_and_writes_a_model(group_output):
    _, out, _ = group_output
    root = out / "models" / "desc-brainbert" / "checkpoints"
    latest = json.loads((root / "latest.json").read_text())
    checkpoint = root / latest["checkpoint"]
    assert latest["checkpoint"] == "step-00000012"
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["weights_sha256"] == sha256_of_file(checkpoint / "model.safetensors")
    assert "0.1.0" in (checkpoint / "model_card.md").read_text()
    assert "- precision: float32" in (checkpoint / "model_card.md").read_text()   # the default, recorded
    assert (checkpoint / "loss_curve.png").stat().st_size > 1000
    model, model_config, _ = load_checkpoint(checkpoint)
    assert model_config.d_model == 384 and model_config.n_layers == 3


def test_group_level_writes_its_own_log_and_configuration(group_output):
    """OUTPUT_DIR/logs/group/<run id>/bids-brainbert.{log,toml}, as the participant level's per-subject logs."""
    root, out, _ = group_output
    runs = sorted((out / "logs" / "group").iterdir())
    assert len(runs) == 1
    log = (runs[0] / "bids-brainbert.log").read_text()
    assert f"run {runs[0].name}" in log and "pretraining a small model" in log and "model written to" in log
    for recording in index_recordings(root):
        assert f"written  {recording.relative_path}" in log
    configuration = tomllib.loads((runs[0] / "bids-brainbert.toml").read_text())
    assert configuration["train_steps"] == 12 and configuration["analysis_level"] == "group"


def test_group_writes_embeddings_for_every_recording(group_output):
    root, out, truth = group_output
    for recording in index_recordings(root):
        folder = out / recording.path.parent.relative_to(root)
        stem = recording.stem_entities
        spectrogram = np.load(folder / f"{stem}_desc-superlet_spectrogram.npy", mmap_mode="r")
        windows = np.load(folder / f"{stem}_desc-brainbert_embeddings.npy")
        sidecar = json.loads((folder / f"{stem}_desc-brainbert_embeddings.json").read_text())
        assert windows.shape[0] == spectrogram.shape[0] and windows.shape[2] == 384 and windows.shape[1] >= 1
        assert np.isfinite(windows).all() and windows.std() > 0
        # sliding windows are read out over all frames (dimensionality), event windows over the middle ones (probes)
        assert sidecar["Layer"] == -1 and sidecar["Pooling"] == "mean" and sidecar["MiddleFrames"] is None
        assert sidecar["Precision"]["Requested"] == sidecar["Precision"]["Used"] == "float32"
        events_sidecar = json.loads((folder / f"{stem}_desc-brainbertEvents_embeddings.json").read_text())
        assert events_sidecar["Pooling"] == "middle" and events_sidecar["MiddleFrames"] == 10
        assert sidecar["WindowS"] == 2.0 and len(sidecar["WindowCentresS"]) == windows.shape[1]
        weights = out / "models" / "desc-brainbert" / "checkpoints" / "step-00000012" / "model.safetensors"
        assert sidecar["Model"]["Sha256"] == sha256_of_file(weights)
        assert sidecar["DataSha256"] == sha256_of_file(folder / f"{stem}_desc-brainbert_embeddings.npy")
        events = pd.read_csv(folder / f"{stem}_desc-brainbertEvents_embeddings.tsv", sep="\t")
        event_embeddings = np.load(folder / f"{stem}_desc-brainbertEvents_embeddings.npy")
        assert event_embeddings.shape == (spectrogram.shape[0], len(events), 384)
        assert set(events["trial_type"]) == {"speech", "nonspeech"}


def test_participant_level_uses_the_group_model(group_output, tmp_path):
    root, out, _ = group_output
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    target = next(copy.rglob("*_desc-brainbert_embeddings.npy"))
    original = target.read_bytes()
    target.unlink()
    assert run(root, copy, "participant", "--skip-bids-validation", "--random-seed", "5",
               "--embedding-window-s", "2") == 0
    assert target.read_bytes() == original, "embeddings are not reproducible"


def test_bf16_embeddings_match_float32_and_say_so(group_output, tmp_path):
    """--precision bfloat16 end to end: per-window cosine >= 0.999 against the float32 embeddings, recorded."""
    root, out, _ = group_output
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    checkpoint = copy / "models" / "desc-brainbert" / "checkpoints" / "step-00000012"
    assert run(root, copy, "participant", "--skip-bids-validation", "--random-seed", "5", "--embedding-window-s",
               "2", "--model", checkpoint, "--model-label", "bf16", "--precision", "bfloat16") == 0
    pairs = [(p, p.with_name(p.name.replace("_desc-bf16", "_desc-brainbert")))
             for p in copy.rglob("*_desc-bf16*_embeddings.npy") if "Random" not in p.name]
    assert len(pairs) >= 2
    for bf16_path, fp32_path in pairs:
        bf16, fp32 = np.load(bf16_path), np.load(fp32_path)
        assert bf16.shape == fp32.shape and not np.array_equal(bf16, fp32)
        a, b = bf16.reshape(-1, bf16.shape[-1]).astype(float), fp32.reshape(-1, fp32.shape[-1]).astype(float)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() >= 0.999, (bf16_path.name, cosine.min())
        sidecar = json.loads(bf16_path.with_suffix(".json").read_text())
        assert sidecar["Precision"]["Requested"] == sidecar["Precision"]["Used"] == "bfloat16"


def test_rerunning_group_resumes_instead_of_retraining(group_output, tmp_path):
    root, out, _ = group_output
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    weights = copy / "models" / "desc-brainbert" / "checkpoints" / "step-00000012" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert run(root, copy, "group", *FAST) == 0
    assert weights.stat().st_mtime_ns == before


def test_holdout_subject_and_explicit_model(group_output, tmp_path, capsys):
    root, out, truth = group_output
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert run(root, copy, "group", *FAST, "--holdout-participant-label", "sub-01") == 0
    checkpoint = copy / "models" / "desc-brainbertHoldout01" / "checkpoints" / "step-00000012"
    training = json.loads((checkpoint / "config.json").read_text())["training"]
    used = [Path(f).name for f in training["train_files"] + training["val_files"]]
    assert used and not [name for name in used if name.startswith("sub-01_")], used
    assert list(copy.rglob("sub-01_*_desc-brainbertHoldout01_embeddings.npy"))
    # --model with a corrupt checkpoint: exit 65, nothing written for it
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"not a checkpoint")
    assert run(root, tmp_path / "o2", "participant", "--model", corrupt, "--model-label", "bad",
               "--skip-bids-validation") == 65
    assert str(corrupt) in capsys.readouterr().err
    assert not list((tmp_path / "o2").rglob("*_desc-bad_*"))
    # the published weights need the STFT front end
    published = tmp_path / "stft_large_pretrained.pth"
    published.write_bytes(b"x")
    assert run(root, tmp_path / "o3", "participant", "--model", published, "--skip-bids-validation") == 64
    assert "--spectrogram stft" in capsys.readouterr().err


def test_group_under_torchrun_with_two_processes(demo_derivatives, tmp_path):
    root, out, _ = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "bids_brainbert", str(root), str(copy), "group", *FAST, "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = copy / "models" / "desc-brainbert" / "checkpoints" / "step-00000012"
    training = json.loads((checkpoint / "config.json").read_text())["training"]
    assert training["world_size"] == 2 and training["steps"] == 12
    assert len(set(training["train_files"]) | set(training["val_files"])) == len(index_recordings(root))
    losses = load_file(str(checkpoint / "training_state.safetensors"))["extra.train_loss"]
    assert losses.numel() == 12 and torch.isfinite(losses).all()
    assert len(list(copy.rglob("*_desc-brainbert_embeddings.npy"))) == len(index_recordings(root))
    assert len(list((copy / "logs" / "group").glob("*/bids-brainbert.log"))) == 1   # the main process only


def test_group_dry_run_and_missing_participant_outputs(demo_dataset, tmp_path, capsys):
    root, _ = demo_dataset
    assert run(root, tmp_path / "out", "group", "--skip-bids-validation") == 1
    assert "run the participant level first" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_init_model_fine_tunes_from_a_checkpoint(group_output, tmp_path):
    root, out, _ = group_output
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    start = out / "models" / "desc-brainbert" / "checkpoints" / "step-00000012"
    assert run(root, copy, "group", *FAST, "--init-model", start, "--model-label", "tuned", "--train-steps", "3",
               "--checkpoint-every", "3") == 0
    tuned = copy / "models" / "desc-tuned" / "checkpoints" / "step-00000003"
    training = json.loads((tuned / "config.json").read_text())["training"]
    assert training["initialised_from"] == str(start)
    initial, _, _ = load_checkpoint(start)
    after, _, _ = load_checkpoint(tuned)
    # three small steps move the weights, but they stay close to where they started
    first, second = initial.state_dict(), after.state_dict()
    drift = max(float((first[k] - second[k]).abs().max()) for k in first)
    assert 0 < drift < 0.05
    assert list(copy.rglob("*_desc-tuned_embeddings.npy"))


def test_published_checkpoint_gives_embeddings_from_the_stft(demo_dataset, tmp_path):
    """A checkpoint in the released format (keys model/model_cfg/optim/scheduler), read with weights_only."""
    from test_model import PublishedLayout, save_published_layout

    root, _ = demo_dataset
    layout = PublishedLayout(d=32, n_freqs=40, n_layers=2, nhead=4, d_ff=48)
    checkpoint = tmp_path / "stft_large_pretrained.pth"
    save_published_layout(checkpoint, layout)
    out = tmp_path / "out"
    assert run(root, out, "participant", "--model", checkpoint, "--spectrogram", "stft", "--participant-label", "02",
               "--embedding-window-s", "2", "--skip-bids-validation") == 0
    embeddings = next(out.rglob("*_desc-brainbert_embeddings.npy"))
    sidecar = json.loads(embeddings.with_suffix(".json").read_text())
    channels = json.loads(next(out.rglob("*_desc-stft_spectrogram.json")).read_text())["Shape"][0]
    array = np.load(embeddings)
    assert array.shape[0] == channels and array.shape[2] == 32 and np.isfinite(array).all()
    assert sidecar["Model"]["Format"] == "brainbert-published"
    assert sidecar["Model"]["Sha256"] == sha256_of_file(checkpoint)
