"""The group HTML report (``group_ieeg.html``) and the methods text (``logs/CITATION.md``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import __version__
from ..bids import derivatives as deriv
from ..bids import names as naming
from ..bids.discovery import Recording
from ..bids.names import GROUP_REPORT, MODELS_DIR
from ..config import RunConfig
from ..errors import BidsBrainbertError
from .participant import spectrogram_paths_for
from .decoding import OFFSET_CURVE_ELECTRODES
from .group_tables import _read_tsv, root_path, task_of
from ..analyses.verdict import report_table, verdict, verdict_sentences
from ..reports.boilerplate import methods_text, package_versions
from ..reports.html import Section, heading, image, paragraph, preformatted, render, table
from ..training import latest_checkpoint
from .embeddings import find_model
from .provenance import model_record, recorded_settings


def verdict_section(config: RunConfig, task: str, summary: pd.DataFrame) -> str:
    """The verdict table (from its TSV when written, else from the summary) and its plain-words outcome."""
    stored = _read_tsv(root_path(config.output_dir, naming.group_table(task, "verdict", "summary")))
    frame = stored if stored is not None else verdict(summary)
    if frame is None or not len(frame):
        return ""
    body = "<h3>Verdict: is pretraining worth it?</h3>"
    body += "".join(paragraph(text) for text in verdict_sentences(frame))
    body += paragraph("Electrode rows: median electrode AUC per feature; for each embedding (or fine-tuned) model "
                      "the median paired difference to the Laplacian baseline and to the same network with random "
                      "weights, over the electrodes both scored (n electrodes). Population rows: one score per "
                      "subject (all its electrodes together: concatenated probe, population model, fine-tuned "
                      "population), paired by subject with the Laplacian concatenated probe, the random control, "
                      "and the subject's best and median single electrode of the feature read (n subjects; the best "
                      "electrode is picked on the same held-out AUCs, which favours it). p: Wilcoxon signed-rank "
                      "(all columns in the verdict TSV).", "note")
    return body + table(compact_verdict(frame))


def compact_verdict(frame: pd.DataFrame) -> pd.DataFrame:
    """The verdict as the report shows it: one comparison per cell."""
    return report_table(frame)


def data_efficiency_caption(path: Path) -> str:
    sidecar_path = path.with_suffix(".json")
    if not sidecar_path.exists():
        return ""
    sidecar = deriv.read_json(sidecar_path)
    used = "; ".join(f"{subject}: {', '.join(map(str, sizes))}" for subject, sizes in
                     sorted(sidecar.get("SizesUsed", {}).items()))
    return paragraph(f"Requested training-set sizes: {', '.join(map(str, sidecar.get('RequestedSizes', [])))}. "
                     f"Sizes that fitted and were used, per subject: {used or 'none'}. One panel per subject: a "
                     "subject's curve stops at its own data.", "note")


def electrode_count_reason(config: RunConfig, task: str, feature: str) -> str:
    """Why a feature scored the number of electrodes it did (from the decoding sidecar's feature record)."""
    path = root_path(config.output_dir, naming.group_table(task, "decoding", "summary", ".json"))
    info = deriv.read_json(path).get("Features", {}).get(feature, {}) if path.exists() else {}
    kind, reference = info.get("Kind"), info.get("Reference")
    if kind == "baseline" and reference == "none":
        return "all good channels (unreferenced)"
    if kind == "baseline":
        return f"{reference}: contacts lacking neighbours left out"
    if kind in ("embedding", "random-weights"):
        return "the spectrogram derivative's channels (its reference)"
    return "n/a"


def write_group_report(config: RunConfig, recordings: list[Recording]) -> Path:
    from ..reports import figures  # deferred: matplotlib, loaded only when a figure is drawn

    sections: list[Section] = []
    loss_body = ""

    models_root = config.output_dir / MODELS_DIR
    for model_dir in sorted(models_root.glob("desc-*")) if models_root.is_dir() else []:
        checkpoint = latest_checkpoint(model_dir)
        if checkpoint is not None and (checkpoint / "loss_curve.png").exists():
            loss_body += heading(f"{model_dir.name} ({checkpoint.name})")
            loss_body += image((checkpoint / "loss_curve.png").read_bytes(), f"loss curve {model_dir.name}")

            record = model_record(config.output_dir, model_dir.name.removeprefix("desc-"))
            if record is not None:
                training = record["training"]
                share = record["validation_share"]
                loss_body += paragraph(
                    f"{record['steps_trained']} of {training.get('total_steps', 'n/a')} steps, batch "
                    f"{training.get('batch_size', 'n/a')}; {training.get('n_train_windows', 0)} training and "
                    f"{training.get('n_val_windows', 0)} validation windows (validation share "
                    + (f"{100 * share:.1f}%" if share is not None else "n/a") + " of the windows, " + (
                        f"a block at the end of each of {len(training['val_spans'])} recordings, one window apart "
                        "from the training windows: whole recordings could not give a share near "
                        "--validation-fraction)." if training.get("val_spans") else
                        f"{len(training.get('val_files', []))} of "
                        f"{len(training.get('train_files', [])) + len(training.get('val_files', []))} recordings)."),
                    "note")
    sections.append(Section("Pretraining", loss_body or paragraph("No model has been pretrained in this output "
                                                                  "directory.", "note")))
    for task in sorted({task_of(r) for r in recordings}):
        summary = _read_tsv(root_path(config.output_dir, naming.group_table(task, "decoding", "summary")))
        if summary is not None and len(summary):
            if "positive_class" not in summary.columns:      # written by an earlier version
                summary = summary.assign(positive_class="n/a")
            body = verdict_section(config, task, summary)
            efficiency_path = root_path(config.output_dir, naming.group_table(task, "dataefficiency", "scores"))
            efficiency = _read_tsv(efficiency_path)
            for name, png in figures.decoding_figures(summary, efficiency).items():
                body += image(png, name)
                if name == "dataEfficiency":
                    body += data_efficiency_caption(efficiency_path)
            offsets = _read_tsv(root_path(config.output_dir, naming.group_table(task, "readoutoffset", "summary")))
            if offsets is not None and len(offsets):
                body += "<h3>Where the information is: readout offset</h3>" + paragraph(
                    f"AUC of the {offsets['feature'].iloc[0]} baseline of each "
                    f"subject's {OFFSET_CURVE_ELECTRODES} best electrodes with the {config.embedding_middle_frames}"
                    "-frame readout centred at other times after the onset (no permutations; the tables above use "
                    "the dotted offset). Choose --decoding-offset-s where the curves peak.", "note")
                used = deriv.read_json(root_path(config.output_dir, naming.group_table(task, "decoding", "summary", ".json"))).get(
                    "ReadoutOffsetS", 0.0)
                body += image(figures.auc_by_offset(offsets, float(used)), "AUC against readout offset")
            electrodes = summary[summary["probe"] == "electrode"]
            overview = (electrodes.assign(significant=electrodes["p_value"].astype(float) < 0.05)
                        .groupby(["target", "positive_class", "feature"], sort=False)
                        .agg(electrodes=("auc_mean", "count"), auc_mean=("auc_mean", "mean"),
                             auc_max=("auc_mean", "max"), fraction_p_below_005=("significant", "mean"))
                        .reset_index())
            overview["why this many electrodes"] = [electrode_count_reason(config, task, f)
                                                    for f in overview["feature"]]
            body += heading("Electrode probes by feature") + table(overview)
            population = summary[summary["probe"] == "population"]
            body += heading("Population probes") + table(population[["subject", "target", "feature", "auc_mean",
                                                                      "auc_sd", "chance_high", "p_value"]])
            generalization = _read_tsv(root_path(config.output_dir, naming.group_table(task, "generalization", "summary")))
            # a comparison needs somebody who was not trained on: hidden when every subject was
            if generalization is not None and len(generalization) and set(
                    generalization["in_pretraining"].astype(str)) - {"trained", "true"}:
                body += heading("Generalization to subjects held out of pretraining") + table(generalization)
            sections.append(Section(f"Decoding, task {task}", body))
        from .population import report_section as population_section      # workflows/population.py
        if (population := population_section(config, task)) is not None:
            sections.append(population)
        from .finetune import report_section as finetune_section          # workflows/finetune.py
        if (finetuned := finetune_section(config, task)) is not None:
            sections.append(finetuned)
        regions = _read_tsv(root_path(config.output_dir, naming.group_table(task, "dimensionality", "regions")))
        if regions is not None and len(regions):
            sections.append(Section(f"Intrinsic dimensionality, task {task}",
                                    image(figures.dimensionality_by_region(regions), "dimensionality by region")
                                    + table(regions)))
    citation = root_path(config.output_dir, CITATION)
    if citation.exists():
        sections.append(Section("Methods", preformatted(citation.read_text())))
    path = root_path(config.output_dir, GROUP_REPORT)
    deriv.atomic_write_bytes(path, render("bids-brainbert: group report", sections,
                                          f"bids-brainbert {__version__}").encode("utf-8"))
    return path


CITATION = "logs/CITATION.md"


def write_citation(config: RunConfig, analysis: str, recordings: list[Recording] | None = None) -> Path:
    """logs/CITATION.md from what the outputs record (model config.json, sidecars), not the current defaults."""
    model = None
    try:
        source = find_model(config)
        if source is not None:
            model = {"sha256": source.sha256, "path": str(source.path)}
    except BidsBrainbertError:
        model = None
    recordings = recordings or []
    spectrogram = next((spectrogram_paths_for(config, r)["sidecar"] for r in recordings
                        if spectrogram_paths_for(config, r)["sidecar"].exists()), None)
    recorded = recorded_settings(config, sorted({task_of(r) for r in recordings}), spectrogram,
                                 sorted({r.subject for r in recordings}))
    if recorded.model is not None:
        model = {**recorded.model, **(model or {})}
    path = root_path(config.output_dir, CITATION)
    text = methods_text(recorded.settings, package_versions(), __version__, analysis, model,
                        sections=recorded.sections if recordings else None, random_control=recorded.random_control,
                        readout_offset_s=recorded.readout_offset_s)
    deriv.atomic_write_bytes(path, text.encode("utf-8"))
    return path
