"""The full group level (pretrain with a held-out subject, embed, decode, dimensionality) and its reports:
self-contained HTML opened in headless Chromium, which must decode every embedded figure."""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from bids_brainbert.bids.derivatives import sha256_of_file
from bids_brainbert.cli.run import main

GROUP = ["--train-steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--model-size", "small",
         "--train-window-s", "2", "--embedding-window-s", "2", "--decoding-window-s", "2",
         "--holdout-participant-label", "03", "--decoding-features", "laplacian", "embeddings", "random",
         "--decoding-permutations", "50", "--data-efficiency-draws", "1", "--skip-bids-validation",
         "--random-seed", "9"]
# chromium reports, after load, the natural width of every <img> (0 = not decoded)
PROBE = ("<script>window.addEventListener('load', () => { document.title = 'IMAGES:' + "
         "Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0).join(','); });</script>")


def run(*args) -> int:
    return main([str(a) for a in args])


def test_group_analyses_and_reports(demo_derivatives, tmp_path):
    """One full group run checked from several sides (one test: parallel workers must not repeat the run)."""
    root, out, truth = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert run(root, copy, "group", *GROUP) == 0
    check_reports_render_in_chromium_with_their_figures(copy, truth, tmp_path)
    check_generalization_dimensionality_and_provenance(copy)
    check_random_weights_control_and_verdict(copy)
    check_honest_report_contents(copy)
    check_analyses_alone_reuse_existing_derivatives(root, copy, tmp_path)
    check_methods_after_reports_alone_follow_the_recorded_model(root, copy, tmp_path)


def rendered_image_widths(html_path, tmp_path) -> list[int]:
    """Open a copy of the report (plus a probe script) in headless Chromium; widths of its decoded images."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is required (CI installs it: see .ci/run)"
    copy = tmp_path / html_path.name
    copy.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"<title>IMAGES:([0-9,]*)</title>", done.stdout)
    assert match, done.stdout[:2000]
    return [int(w) for w in match.group(1).split(",") if w]


def check_reports_render_in_chromium_with_their_figures(out, truth, tmp_path):
    group = out / "group_ieeg.html"
    text = group.read_text()
    assert "src=\"http" not in text and "<link" not in text, "reports must be self-contained"
    widths = rendered_image_widths(group, tmp_path)
    # loss curve, decoding by feature, by region, data efficiency, dimensionality
    assert len(widths) >= 5 and all(w > 100 for w in widths), widths
    for subject in truth.responsive:
        report = out / f"sub-{subject}.html"
        widths = rendered_image_widths(report, tmp_path)
        n_recordings = len(truth.runs[subject])
        # a spectrogram and an embedding plot per recording, and a decoding map
        assert len(widths) >= 2 * n_recordings + 1 and all(w > 100 for w in widths), (subject, widths)
        body = report.read_text()
        bad = truth.bad_channels[subject][0]
        assert re.search(rf"<td>{re.escape(bad)}</td>\s*<td>[A-Z]*</td>\s*<td>no</td>\s*<td>marked bad", body), bad
        assert "left out by 'auto' re-referencing" in body
        assert "Intrinsic dimensionality" in body and "Decoding" in body


def test_a_blank_report_would_fail_the_render_check(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><img src="data:image/png;base64,AAAA"></body></html>')
    assert rendered_image_widths(broken, tmp_path) == [0]


def test_participant_level_writes_subject_reports(demo_derivatives):
    _, out, truth = demo_derivatives
    for subject in truth.responsive:
        body = (out / f"sub-{subject}.html").read_text()
        assert "Spectrogram examples" in body and body.count("data:image/png;base64,") >= len(truth.runs[subject])
        assert truth.bad_channels[subject][0] in body


def check_generalization_dimensionality_and_provenance(out):
    label = "brainbertHoldout03"
    weights = out / "models" / f"desc-{label}" / "checkpoints" / "step-00000012" / "model.safetensors"
    generalization = pd.read_csv(out / "task-listening_desc-generalization_summary.tsv", sep="\t",
                                 dtype={"subject": str})
    held = dict(zip(generalization["subject"], generalization["in_pretraining"].astype(str).str.lower()))
    assert held == {"01": "trained", "02": "trained", "03": "held out"}
    sidecar = json.loads((out / "task-listening_desc-decoding_scores.json").read_text())
    assert sidecar["Features"][label]["ModelSha256"] == sha256_of_file(weights)
    assert sidecar["Features"][label]["WindowS"] == 2.0
    electrodes = pd.read_csv(out / "task-listening_desc-dimensionality_electrodes.tsv", sep="\t",
                             dtype={"subject": str}, keep_default_na=False)
    assert set(electrodes["feature"]) == {label, f"{label}Random", "spectrogram"}
    assert set(electrodes["region_source"]) == {"electrodes.tsv"}
    assert {"superior temporal gyrus", "hippocampus"} <= set(electrodes["region"])
    scored = electrodes[electrodes["dimension"] != "n/a"]
    assert len(scored) == len(electrodes)
    assert (scored["dimension"].astype(int) <= scored["max_dimension"].astype(int)).all()
    assert (scored["dimension"].astype(int) >= 1).all()
    regions = pd.read_csv(out / "task-listening_desc-dimensionality_regions.tsv", sep="\t")
    assert regions["n_electrodes"].sum() == len(scored)
    dim_sidecar = json.loads((out / "task-listening_desc-dimensionality_electrodes.json").read_text())
    assert dim_sidecar["Features"][label]["ModelSha256"] == sha256_of_file(weights)
    assert dim_sidecar["Threshold"] == 0.95 and dim_sidecar["SoftwareVersion"]
    citation = (out / "logs" / "CITATION.md").read_text()
    for fact in ("bids-brainbert", "scikit-learn", "50 permutations of the labels within each run", "seed 9", "leaving out subject(s) 03",
                 "windows of 2 s", "trial_type"):
        assert fact in citation, fact


def check_analyses_alone_reuse_existing_derivatives(root, out, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(out, copy)
    weights = next(copy.rglob("model.safetensors"))
    before = weights.stat().st_mtime_ns
    (copy / "task-listening_desc-dimensionality_regions.tsv").unlink()
    (copy / "group_ieeg.html").unlink()
    assert run(root, copy, "group", "--analysis", "dimensionality", "--embedding-window-s", "2",
               "--skip-bids-validation", "--model-label", "brainbertHoldout03") == 0
    assert (copy / "task-listening_desc-dimensionality_regions.tsv").exists()
    assert (copy / "group_ieeg.html").exists() and weights.stat().st_mtime_ns == before


def check_random_weights_control_and_verdict(out):
    label = "brainbertHoldout03"
    random_label = f"{label}Random"
    # its own derivative, same shape and windows as the trained model's, different numbers
    for trained in out.rglob(f"*_desc-{label}Events_embeddings.npy"):
        control = trained.with_name(trained.name.replace(f"desc-{label}Events", f"desc-{random_label}Events"))
        a, b = np.load(trained), np.load(control)
        assert a.shape == b.shape and not np.allclose(a, b)
        sidecar = json.loads(control.with_suffix(".json").read_text())
        trained_sidecar = json.loads(trained.with_suffix(".json").read_text())
        assert sidecar["Model"]["Format"] == "random-weights" and sidecar["Model"]["RandomWeights"]["Seed"] == 9
        assert sidecar["Model"]["Config"] == trained_sidecar["Model"]["Config"]
        for key in ("Layer", "Pooling", "MiddleFrames", "WindowS"):
            assert sidecar[key] == trained_sidecar[key], key
    scores = pd.read_csv(out / "task-listening_desc-decoding_scores.tsv", sep="\t", dtype={"subject": str},
                         keep_default_na=False)
    assert set(scores.loc[scores["feature"] == random_label, "feature_kind"]) == {"random-weights"}
    electrodes = scores[scores["probe"] == "electrode"]
    per_electrode = electrodes.groupby(["feature", "subject", "electrode"])["auc"].mean()
    verdict = pd.read_csv(out / "task-listening_desc-verdict_summary.tsv", sep="\t", keep_default_na=False,
                          na_values=["n/a"])
    sidecar = json.loads((out / "task-listening_desc-verdict_summary.json").read_text())
    assert all(sidecar[c]["Description"] for c in verdict.columns)
    assert set(verdict["level"]) == {"electrode", "population"}
    check_population_rows_of_the_verdict(out, verdict[verdict["level"] == "population"], label)
    verdict = verdict[verdict["level"] == "electrode"]
    # the verdict's numbers are the scores TSV's
    for _, row in verdict.iterrows():
        aucs = per_electrode.loc[row["feature"]]
        assert row["n_electrodes"] == len(aucs)
        assert abs(row["auc_median"] - aucs.median()) < 1e-5, row["feature"]
    emb = verdict[verdict["feature"] == label].iloc[0]
    assert emb["vs_random"] == random_label and emb["vs_laplacian"] == "laplacianSuperlet"
    # (the test on the summary's unrounded fold means: the scores TSV rounds each fold's AUC to 6 digits, which
    # turns exact ties of the paired differences into tiny non-zero ones)
    summary = pd.read_csv(out / "task-listening_desc-decoding_summary.tsv", sep="\t", dtype={"subject": str},
                          keep_default_na=False)
    exact = summary[summary["probe"] == "electrode"].set_index(["feature", "subject", "electrode"])["auc_mean"]
    for other, prefix in ((random_label, "random"), ("laplacianSuperlet", "laplacian")):
        mine, theirs = per_electrode.loc[label], per_electrode.loc[other]
        common = mine.index.intersection(theirs.index)
        diff = (mine.loc[common] - theirs.loc[common]).to_numpy()
        assert emb[f"minus_{prefix}_n"] == len(common) > 10
        assert abs(emb[f"minus_{prefix}_median"] - np.median(diff)) < 1e-5
        exact_diff = (exact.loc[label].loc[common] - exact.loc[other].loc[common]).to_numpy()
        assert abs(emb[f"minus_{prefix}_p"] - wilcoxon(exact_diff).pvalue) < 1e-9
    text = (out / "group_ieeg.html").read_text()
    assert "Verdict" in text and ("beats" in text or "do not differ" in text)


def check_population_rows_of_the_verdict(out, rows, label):
    """One score per subject: the population model and the concatenated probes, paired by subject with the
    Laplacian concatenated probe and with each subject's best and median single electrode (from the summary)."""
    summary = pd.read_csv(out / "task-listening_desc-decoding_summary.tsv", sep="\t", dtype={"subject": str},
                          keep_default_na=False)
    population = summary[summary["probe"] == "population"].set_index(["feature", "subject"])["auc_mean"]
    electrodes = summary[summary["probe"] == "electrode"]
    model = f"population{label[:1].upper()}{label[1:]}"
    rows = rows.set_index("feature")
    assert {model, label, f"{label}Random", "laplacianSuperlet"} <= set(rows.index)
    for feature, row in rows.iterrows():
        assert row["n_subjects"] == len(population.loc[feature]) and np.isnan(row["n_electrodes"])
        assert abs(row["auc_median"] - population.loc[feature].median()) < 1e-9, feature
    mine = rows.loc[model]
    diff = population.loc[model] - population.loc["laplacianSuperlet"]
    assert mine["vs_laplacian"] == "laplacianSuperlet" and mine["minus_laplacian_n"] == len(diff) == 3
    assert abs(mine["minus_laplacian_median"] - diff.median()) < 1e-9
    assert abs(mine["minus_laplacian_p"] - wilcoxon(diff.to_numpy()).pvalue) < 1e-9
    singles = electrodes[electrodes["feature"] == label].groupby("subject")["auc_mean"]
    assert mine["vs_electrodes"] == label and mine["minus_best_electrode_n"] == 3
    assert abs(mine["minus_best_electrode_median"] - (population.loc[model] - singles.max()).median()) < 1e-9
    assert abs(mine["minus_median_electrode_median"] - (population.loc[model] - singles.median()).median()) < 1e-9
    concatenated = rows.loc[label]
    assert concatenated["vs_random"] == f"{label}Random" and concatenated["minus_random_n"] == 3
    text = (out / "group_ieeg.html").read_text()
    verdict_part = text[text.index("Verdict"):text.index("Electrode probes by feature")]
    assert "population level (one score per subject" in verdict_part and model in verdict_part
    assert "minus best electrode" in verdict_part and "3 subjects" in verdict_part


def check_honest_report_contents(out):
    summary = pd.read_csv(out / "task-listening_desc-decoding_summary.tsv", sep="\t", dtype={"subject": str},
                          keep_default_na=False)
    # the demo's two values: speech is the positive class, and the tables and figures say so
    assert set(summary["target"]) == {"speechVsNonspeech"} and set(summary["positive_class"]) == {"speech"}
    efficiency = json.loads((out / "task-listening_desc-dataefficiency_scores.json").read_text())
    assert efficiency["RequestedSizes"] == [50, 100, 200, 500, 1000] and set(efficiency["SizesUsed"]) == {
        "sub-01", "sub-02", "sub-03"}
    decoding = json.loads((out / "task-listening_desc-decoding_summary.json").read_text())
    sources = decoding["Sources"]
    for subject in ("01", "02", "03"):
        assert any(f"sub-{subject}_" in s and "brainbertHoldout03Events_embeddings.npy" in s for s in sources)
    assert len(decoding["Features"]["brainbertHoldout03"]["Sources"]) == 4      # every recording's embeddings
    dims = pd.read_csv(out / "task-listening_desc-dimensionality_electrodes.tsv", sep="\t", keep_default_na=False,
                       dtype={"at_ceiling": str})
    assert (dims["max_dimension"].astype(int) == np.minimum(dims["n_examples"] - 1, dims["n_features"])).all()
    scored = dims[dims["dimension"] != "n/a"]
    assert set(scored["at_ceiling"]) <= {"true", "false"}
    assert ((scored["at_ceiling"] == "true") == (scored["dimension"].astype(int) == scored["max_dimension"])).all()
    regions = pd.read_csv(out / "task-listening_desc-dimensionality_regions.tsv", sep="\t")
    assert regions["n_at_ceiling"].sum() == (scored["at_ceiling"] == "true").sum()
    offsets = pd.read_csv(out / "task-listening_desc-readoutoffset_summary.tsv", sep="\t", dtype={"subject": str})
    assert offsets.groupby(["subject", "electrode"]).size().min() >= 5 and 0.0 in set(offsets["offset_s"])
    text = (out / "group_ieeg.html").read_text()
    assert "positive class: speech" in text and "readout offset" in text
    assert "why this many electrodes" in text and "Sizes that fitted and were used" in text
    assert "validation share" in text
    # few training runs of unequal length (whole runs: 23 %): blocks of windows within runs, the share near 10 %
    config = json.loads(next((out / "models" / "desc-brainbertHoldout03" / "checkpoints").glob("step-*/config.json"))
                        .read_text())["training"]
    share = config["n_val_windows"] / (config["n_train_windows"] + config["n_val_windows"])
    assert 0.075 <= share <= 0.125 and set(config["val_spans"]) == set(config["train_files"]), share
    assert f"validation share {100 * share:.1f}%" in text and "a block at the end of each of 3 recordings" in text
    report = (out / "sub-02.html").read_text()
    assert "most responsive" in report


def check_methods_after_reports_alone_follow_the_recorded_model(root, out, tmp_path):
    copy = tmp_path / "reports"
    shutil.copytree(out, copy)
    # the defaults would say 2000 steps and batch 64: the text must say what the model was trained with
    assert run(root, copy, "group", "--analysis", "reports", "--skip-bids-validation") == 0
    citation = (copy / "logs" / "CITATION.md").read_text()
    config = json.loads(next((copy / "models").rglob("config.json")).read_text())
    assert config["training"]["total_steps"] == 12 and config["training"]["batch_size"] == 8
    assert "for 12 steps (batch 8" in citation and "2000" not in citation
    assert f"d_model {config['model']['d_model']}" in citation
    assert "## Decoding" in citation and "## Intrinsic dimensionality" in citation
    assert "random weights" in citation and "leaving out subject(s) 03" in citation
    assert "speech,nonspeech (positive class speech)" in citation
