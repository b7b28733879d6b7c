"""The population model over electrode coordinates: pretraining across subjects, summary-token readout with the
per-electrode probes' folds and null, coordinates, unknown positions, checkpoints.

The frozen per-electrode embeddings are simulated here: every electrode carries a shared population state of each
window (what the self-supervised tasks can learn from) plus a weak, centred event-related shift along the same
direction (a fraction of one noise standard deviation per electrode), so a single electrode hardly decodes while
their combination does. With ``spatial`` the sign of both depends on the electrode's hemisphere (x < 0 or x > 0),
so averaging electrodes without knowing where they are cancels the response.
"""

import json
import logging

import numpy as np
import pytest
import torch

from bids_brainbert.analyses.decoding import DecodingParams, decode
from bids_brainbert.analyses.population import (PopulationConfig, PretrainParams, SubjectWindows, check_coordinates,
                                                load_population, pretrain_population, save_population,
                                                summary_tokens)
from bids_brainbert.errors import CheckpointError

N_WINDOWS, DIM = 200, 4
# the finest wavelength (30 mm) is coarser than the electrodes' spacing (~15 mm): a smooth map of space, which a
# permutation of the coordinates cannot imitate by memorising each electrode's place
CONFIG = PopulationConfig(d_in=DIM, d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0, min_wavelength_mm=30.0)
STEPS = PretrainParams(steps=250, lr=3e-3)
PARAMS = DecodingParams(n_permutations=20)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)          # tiny matrices: threads only add overhead
    yield
    torch.set_num_threads(before)


def simulated_subject(subject, seed, n_electrodes=48, effect=1.5, gain=0.5, spatial=False):
    rng = np.random.default_rng(seed)
    coords = rng.uniform(-30, 30, (n_electrodes, 3))
    y = rng.permutation(np.arange(N_WINDOWS) % 2)
    direction = rng.standard_normal(DIM)
    direction /= np.linalg.norm(direction)
    state = rng.standard_normal(N_WINDOWS) + effect * (y - 0.5)     # centred: no class differs in magnitude
    sign = np.sign(coords[:, 0]) if spatial else np.ones(n_electrodes)
    x = gain * state[:, None, None] * sign[None, :, None] * direction + rng.standard_normal((N_WINDOWS, n_electrodes,
                                                                                               DIM))
    names = [f"E{i:02d}" for i in range(n_electrodes)]
    return SubjectWindows(subject, x.astype(np.float32), coords, names), y


def cross_validated(x, y):
    starts = np.arange(N_WINDOWS) * 2.0                              # one run, 1 s windows 2 s apart
    return decode(x, y, starts, starts + 1.0, None, PARAMS, np.random.default_rng(0))


def test_population_model_decodes_a_response_spread_thinly_over_electrodes():
    thin, y = simulated_subject("01", seed=1, gain=0.2)
    twin, y_twin = simulated_subject("02", seed=2, n_electrodes=40, gain=0.2, effect=0.0)   # label-independent
    model, info = pretrain_population([thin, twin], CONFIG, STEPS, seed=3)   # different electrode sets together
    assert info["Subjects"] == ["01", "02"] and info["Electrodes"] == {"01": 48, "02": 40}
    singles = [cross_validated(thin.x[:, i], y) for i in range(thin.x.shape[1])]
    single_aucs = np.array([r.auc_mean for r in singles])
    assert np.median(single_aucs) < 0.6, np.median(single_aucs)
    population = cross_validated(summary_tokens(model, thin), y)
    assert population.auc_mean > single_aucs.max() + 0.1, (population.auc_mean, single_aucs.max())
    assert population.auc_mean > np.median(single_aucs) + 0.2
    assert population.p_value < 0.05 and population.auc_mean > population.chance_high
    assert [len(f.test) for f in population.fold_splits] == [len(f.test) for f in singles[0].fold_splits]
    at_chance = cross_validated(summary_tokens(model, twin), y_twin)
    assert 0.35 < at_chance.auc_mean < 0.65 and at_chance.p_value > 0.05, at_chance


def test_permuting_coordinates_lowers_the_auc_of_a_spatially_organised_effect():
    """The pretrained model read out with its electrodes' coordinates permuted loses the hemisphere split."""
    subject, y = simulated_subject("01", seed=4, spatial=True)
    # a random permutation keeps a chance correlation with the left-right order (|r| ~ 0.15 for 48 electrodes) that
    # a smooth spatial weighting still exploits: take the draw that keeps the least of it
    x_mm = subject.coords_mm[:, 0]
    draws = [np.random.default_rng([5, k]).permutation(48) for k in range(30)]
    order = min(draws, key=lambda p: abs(np.corrcoef(x_mm, x_mm[p])[0, 1]))
    assert abs(np.corrcoef(x_mm, x_mm[order])[0, 1]) < 0.02
    shuffled = SubjectWindows("01", subject.x, subject.coords_mm[order], subject.electrodes)
    model, _ = pretrain_population([subject], CONFIG, STEPS, seed=3)
    aucs = {name: cross_validated(summary_tokens(model, data), y).auc_mean
            for name, data in (("true", subject), ("permuted", shuffled))}
    assert aucs["true"] > 0.75 and aucs["true"] > aucs["permuted"] + 0.15, aucs


def test_electrodes_without_coordinates_get_the_unknown_position_and_a_warning(caplog):
    subject, _ = simulated_subject("07", seed=6, n_electrodes=6)
    subject.coords_mm[[1, 4]] = np.nan
    with caplog.at_level(logging.WARNING, logger="bids_brainbert"):
        assert check_coordinates(subject) == 2
    assert "sub-07: 2 of 6 electrodes have no coordinates (E01, E04)" in caplog.text
    model, _ = pretrain_population([subject], CONFIG, PretrainParams(steps=3), seed=0)
    tokens = summary_tokens(model, subject)
    assert tokens.shape == (N_WINDOWS, CONFIG.d_model) and np.isfinite(tokens).all()
    # the learned vector stands in for the position of the electrodes without coordinates, and only for them
    x = torch.from_numpy(subject.standardized()[:2])
    with_gaps = torch.as_tensor(subject.coords_mm, dtype=torch.float32)
    complete = torch.nan_to_num(with_gaps, nan=5.0)
    with torch.no_grad():
        before = model(x, with_gaps)[0], model(x, complete)[0]
        model.unknown_position.add_(1.0)
        after = model(x, with_gaps)[0], model(x, complete)[0]
    assert not torch.allclose(before[0], after[0])
    assert torch.equal(before[1], after[1])


def test_pretraining_is_seeded_and_checkpoints_round_trip_in_safetensors(tmp_path):
    subject, _ = simulated_subject("01", seed=8, n_electrodes=10)
    first, info = pretrain_population([subject], CONFIG, PretrainParams(steps=5), seed=11)
    again, _ = pretrain_population([subject], CONFIG, PretrainParams(steps=5), seed=11)
    other, _ = pretrain_population([subject], CONFIG, PretrainParams(steps=5), seed=12)
    tokens = summary_tokens(first, subject)
    assert np.array_equal(tokens, summary_tokens(again, subject))
    assert not np.allclose(tokens, summary_tokens(other, subject))
    save_population(tmp_path / "model", first, info)
    meta = json.loads((tmp_path / "model" / "population.json").read_text())
    assert meta["config"]["d_model"] == 32 and meta["training"]["Seed"] == 11
    assert np.array_equal(summary_tokens(load_population(tmp_path / "model"), subject), tokens)
    # a tampered or oversized checkpoint is refused before anything is built
    weights = tmp_path / "model" / "population.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="checksum"):
        load_population(tmp_path / "model")
    meta["config"]["d_model"] = 10 ** 9
    (tmp_path / "model" / "population.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="d_model"):
        load_population(tmp_path / "model")


# ------------------------------------------------------------------------------------------------ group level
GROUP = ["--train-steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--model-size", "small",
         "--train-window-s", "2", "--embedding-window-s", "2", "--decoding-window-s", "2", "--skip-bids-validation",
         "--random-seed", "5", "--decoding-permutations", "10", "--data-efficiency-draws", "0",
         "--population-steps", "20"]


def test_group_level_population_model_joins_the_decoding_tables_and_the_report(demo_derivatives, tmp_path):
    import shutil

    import pandas as pd

    from bids_brainbert.cli.run import main

    root, out, truth = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    run = [str(root), str(copy), "group", *GROUP]
    assert main(run + ["--analysis", "pretrain"]) == 0
    assert main(run + ["--analysis", "decoding", "--decoding-features", "embeddings"]) == 0
    assert main(run + ["--analysis", "population"]) == 0
    read = lambda name: pd.read_csv(copy / f"task-listening_desc-decoding_{name}.tsv", sep="\t",  # noqa: E731
                                    dtype={"subject": str}, keep_default_na=False)
    summary, scores = read("summary"), read("scores")
    mine = summary[summary["feature"] == "populationBrainbert"]
    assert set(mine["subject"]) == set(truth.responsive) and set(mine["probe"]) == {"population"}
    assert mine["auc_mean"].between(0, 1).all() and (mine["electrode"] == "n/a").all()
    assert "brainbert" in set(summary["feature"]), "the per-electrode and concatenated rows are kept"
    # the readout is scored on exactly the folds of the concatenated population probe
    fold_sizes = (scores[scores["probe"] == "population"].groupby(["subject", "feature"])[["n_train", "n_test"]]
                  .apply(lambda f: [tuple(r) for r in f.to_numpy()]))
    for subject in truth.responsive:
        assert fold_sizes.loc[(subject, "populationBrainbert")] == fold_sizes.loc[(subject, "brainbert")]
    sidecar = json.loads((copy / "task-listening_desc-decoding_summary.json").read_text())
    info = sidecar["Features"]["populationBrainbert"]
    assert info["Pretraining"]["Steps"] == 20 and sorted(info["Pretraining"]["Subjects"]) == sorted(truth.responsive)
    checkpoint = copy / info["Checkpoint"]
    model = load_population(checkpoint)
    assert model.config.d_in == info["PopulationModel"]["d_in"]
    report = (copy / "group_ieeg.html").read_text()
    assert "Population model, task listening" in report and "populationBrainbert" in report
    # a rerun replaces its rows, it does not add to them
    assert main(run + ["--analysis", "population"]) == 0
    again = read("summary")
    assert len(again) == len(summary) and (again["feature"] == "populationBrainbert").sum() == len(mine)
