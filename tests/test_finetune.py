"""Supervised fine-tuning inside the probes' outer folds: no test window is ever seen in training, and on a
simulated dataset built for it, fine-tuning beats the frozen probe of the same encoder.

The simulated spectrogram windows carry an event-related pattern in time that averages to zero over the middle
frames (a band rises then falls for one class, falls then rises for the other): the frozen encoder pooled over
the middle frames keeps little of it, a fine-tuned one can learn to.
"""

import json

import numpy as np
import pytest
import torch

from bids_brainbert.analyses.cross_validation import leakage_free_folds
from bids_brainbert.analyses.decoding import DecodingParams, decode
from bids_brainbert.analyses.finetune import FinetuneModel, FinetuneParams, finetune_decode
from bids_brainbert.frozen_embeddings import EmbeddingParams, embed_windows
from bids_brainbert.model import ModelConfig
from bids_brainbert.model.encoder import build_model

N, FRAMES, FREQS = 120, 24, 8
TINY = ModelConfig(n_freqs=FREQS, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0, max_frames=64)
PARAMS = FinetuneParams(top_layers=None, max_epochs=25, patience=6, lr=3e-3, batch_size=16, n_permutations=0)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def simulated_windows(seed, effect=0.7, n_runs=1):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(N) % 2)
    x = rng.standard_normal((N, FRAMES, FREQS)).astype(np.float32)
    sign = np.where(y == 1, 1.0, -1.0)[:, None, None]
    x[:, 7:12, 2:5] += effect * sign                 # the middle 10 frames are 7..16: the pattern sums to zero
    x[:, 12:17, 2:5] -= effect * sign
    starts = np.arange(N) * 1.5                      # 2 s windows every 1.5 s: neighbours overlap
    runs = np.repeat(np.arange(n_runs), N // n_runs)
    return x, y, starts, starts + 2.0, runs


def encoder():
    return build_model(TINY, seed=0)


def test_finetuning_never_sees_a_test_window():
    x, y, starts, stops, runs = simulated_windows(1)
    result = finetune_decode(x, y, starts, stops, runs, encoder, FinetuneParams(max_epochs=2, batch_size=16,
                                                                                n_permutations=2))
    folds, _ = leakage_free_folds(starts, stops, runs, n_folds=5)
    assert [f.test.tolist() for f in result.folds] == [f.test.tolist() for f in folds], "the probes' outer folds"
    for fold in result.folds:
        assert len(fold.seen) and len(fold.validation) and len(fold.null_seen) and len(fold.null_aucs) == 2
        assert not set(fold.seen) & set(fold.test.tolist())
        assert not set(fold.null_seen.tolist()) & set(fold.test.tolist()), "the permuted refits neither"
        assert set(fold.seen) <= set(fold.train.tolist()) | set(fold.validation.tolist())
        # nothing the model ran on overlaps a test window in time, nor does the validation block the fitted part
        for used, held in ((fold.seen, fold.test), (fold.train, fold.validation)):
            overlap = (stops[used][:, None] > starts[held][None, :]) & (starts[used][:, None] < stops[held][None, :])
            assert not overlap.any()


def test_finetuning_beats_the_frozen_probe_on_a_pattern_the_frozen_readout_averages_away():
    x, y, starts, stops, runs = simulated_windows(2)
    frozen_features = embed_windows(encoder(), x, EmbeddingParams(window_s=2.0, middle_frames=10))
    frozen = decode(frozen_features, y, starts, stops, runs, DecodingParams(n_permutations=0),
                    np.random.default_rng(0))
    tuned = finetune_decode(x, y, starts, stops, runs, encoder, PARAMS, seed=3)
    assert [len(f.test) for f in tuned.folds] == [len(f.test) for f in frozen.fold_splits]
    assert tuned.auc_mean > 0.8 and tuned.auc_mean > frozen.auc_mean + 0.15, (tuned.auc_mean, frozen.auc_mean)
    assert all(1 <= f.best_epoch <= f.epochs for f in tuned.folds)


def test_group_level_finetune_writes_its_rows_on_the_probes_folds(demo_derivatives, tmp_path):
    import shutil

    import pandas as pd

    from bids_brainbert.cli.run import main

    root, out, _ = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    common = [str(root), str(copy), "group", "--participant-label", "03", "--train-steps", "6", "--batch-size", "8",
              "--checkpoint-every", "6", "--model-size", "small", "--train-window-s", "2", "--embedding-window-s",
              "2", "--decoding-window-s", "2", "--skip-bids-validation", "--random-seed", "5",
              "--decoding-permutations", "0", "--data-efficiency-draws", "0"]
    assert main(common + ["--analysis", "pretrain"]) == 0
    assert main(common + ["--analysis", "decoding", "--decoding-features", "embeddings"]) == 0
    channels = pd.read_csv(next(copy.glob("sub-03/**/*_desc-superlet_channels.tsv")), sep="\t")
    chosen = channels["name"].astype(str).tolist()[:2]
    assert main(common + ["--analysis", "finetune", "--finetune-epochs", "2", "--finetune-electrodes", *chosen,
                          "--finetune-permutations", "1"]) == 0
    scores = pd.read_csv(copy / "task-listening_desc-decoding_scores.tsv", sep="\t", dtype={"subject": str},
                         keep_default_na=False)
    tuned = scores[scores["feature"] == "brainbertFinetuned"]
    assert sorted(set(tuned["electrode"])) == sorted(chosen + ["n/a"])
    assert tuned["auc"].astype(float).between(0, 1).all()
    # the population variant: both electrodes together, one probe per subject, on the same folds
    together = tuned[tuned["probe"] == "population"]
    assert set(together["electrode"]) == {"n/a"} and set(together["subject"]) == {"03"}
    frozen_population = scores[(scores["feature"] == "brainbert") & (scores["probe"] == "population")]
    assert (together[["fold", "n_test"]].values.tolist() == frozen_population[["fold", "n_test"]].values.tolist())
    tuned = tuned[tuned["probe"] == "electrode"]
    for name in chosen:
        frozen = scores[(scores["feature"] == "brainbert") & (scores["electrode"] == name)]
        mine = tuned[tuned["electrode"] == name]
        assert (mine[["fold", "n_train", "n_test"]].values.tolist()
                == frozen[["fold", "n_train", "n_test"]].values.tolist())
    summary = pd.read_csv(copy / "task-listening_desc-decoding_summary.tsv", sep="\t", keep_default_na=False)
    mine = summary[summary["feature"] == "brainbertFinetuned"]
    assert len(mine) == 3 and set(mine["p_value"].astype(float)) <= {0.5, 1.0}     # (1 + #null >= obs) / (1 + 1)
    assert mine["chance_auc"].astype(float).between(0, 1).all()
    sidecar = json.loads((copy / "task-listening_desc-decoding_summary.json").read_text())
    assert sidecar["Features"]["brainbertFinetuned"]["FineTuning"]["n_permutations"] == 1
    # the verdict is rewritten with the fine-tuned rows: per electrode and, per subject, the population variant
    verdict = pd.read_csv(copy / "task-listening_desc-verdict_summary.tsv", sep="\t", keep_default_na=False,
                          na_values=["n/a"])
    rows = verdict[verdict["feature"] == "brainbertFinetuned"].set_index("level")
    assert rows.loc["electrode", "n_electrodes"] == 2 and rows.loc["population", "n_subjects"] == 1
    assert rows.loc["population", "vs_electrodes"] == "brainbertFinetuned"
    assert rows.loc["population", "minus_best_electrode_n"] == 1
    html = (copy / "group_ieeg.html").read_text()
    assert "Fine-tuning, task listening" in html and "1 permutation(s)" in html
    section = html[html.index("Fine-tuning, task listening"):]
    for p in mine["p_value"].astype(float):
        assert f"<td>{p:.3f}</td>" in section
    from test_reports import rendered_image_widths      # the report opens in headless Chromium, figures decoded

    widths = rendered_image_widths(copy / "group_ieeg.html", tmp_path)
    assert widths and min(widths) > 0


def test_refitted_permutation_null_puts_a_real_effect_above_every_permutation():
    """A pattern one epoch learns: every permutation's refitted fold-mean AUC is below the observed one, so p is
    the smallest the permutations allow; the null and p are the ones its fold AUCs give."""
    x, y, starts, stops, runs = simulated_windows(4, n_runs=2)
    x[:, 7:17, 2:5] += 1.5 * np.where(y == 1, 1.0, -1.0)[:, None, None]      # a plain shift: quick to learn
    params = FinetuneParams(top_layers=None, max_epochs=2, patience=2, lr=3e-3, batch_size=16, n_permutations=3)
    result = finetune_decode(x, y, starts, stops, runs, encoder, params, n_folds=2, seed=1)
    assert result.scheme == "run" and len(result.null) == 3
    per_fold = np.stack([f.null_aucs for f in result.folds])
    np.testing.assert_allclose(result.null, np.nanmean(per_fold, axis=0))
    assert result.auc_mean > 0.9 and result.null.max() < result.auc_mean - 0.2, (result.auc_mean, result.null)
    assert result.p_value == pytest.approx(1 / 4) and result.chance_mean == pytest.approx(result.null.mean())
    assert result.chance_low <= result.chance_mean <= result.chance_high
    no_null = finetune_decode(x, y, starts, stops, runs, encoder, FinetuneParams(
        top_layers=None, max_epochs=2, patience=2, lr=3e-3, batch_size=16, n_permutations=0), n_folds=2, seed=1)
    assert no_null.auc_mean == pytest.approx(result.auc_mean) and np.isnan(no_null.p_value)   # same observed fits


def test_population_finetuning_reads_every_electrode_with_one_head_and_never_a_test_window():
    """Three electrodes, the pattern on the third only: one encoder and one head over all three find it."""
    x, y, starts, stops, runs = simulated_windows(5)
    rng = np.random.default_rng(6)
    noise = rng.standard_normal((2,) + x.shape).astype(np.float32)
    x[:, 7:17, 2:5] += 1.5 * np.where(y == 1, 1.0, -1.0)[:, None, None]
    population = np.stack([noise[0], noise[1], x], axis=1)                    # (N, 3 electrodes, frames, freqs)
    params = FinetuneParams(top_layers=None, max_epochs=3, patience=3, lr=3e-3, batch_size=16, n_permutations=1)
    result = finetune_decode(population, y, starts, stops, runs, encoder, params, n_folds=3, seed=2)
    folds, _ = leakage_free_folds(starts, stops, runs, n_folds=3)
    assert [f.test.tolist() for f in result.folds] == [f.test.tolist() for f in folds]
    for fold in result.folds:
        used = set(fold.seen.tolist()) | set(fold.null_seen.tolist())
        assert used and not used & set(fold.test.tolist())
        overlap = (stops[fold.seen][:, None] > starts[fold.test][None, :]) & (
            starts[fold.seen][:, None] < stops[fold.test][None, :])
        assert not overlap.any()
    assert result.auc_mean > 0.85, result.auc_mean
    model = FinetuneModel(encoder(), params, n_electrodes=3)
    assert model.head.in_features == 3 * TINY.d_model
    assert model(torch.from_numpy(population[:4])).shape == (4,)
