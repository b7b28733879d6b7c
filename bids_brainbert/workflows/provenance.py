"""What was actually computed, read back from the outputs' own records (model config.json, derivative and table
sidecars), for the methods text: ``--analysis reports`` must describe the model that was trained with 200 steps
as 200 steps, whatever the current command's defaults say.

:func:`recorded_settings` starts from the run's settings and replaces every value an output records; it also
says which parts exist (pretraining, decoding, dimensionality), so that the text describes those and only those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bids import names
from ..config import RunConfig
from ..training import latest_checkpoint

MODELS_DIR = names.MODELS_DIR


@dataclass
class RecordedSettings:
    settings: dict[str, Any]                            # RunConfig fields, recorded values where known
    sections: set[str] = field(default_factory=set)     # "pretrain", "decoding", "dimensionality"
    model: dict[str, Any] | None = None                 # sha256, label, steps trained, architecture, split
    random_control: dict[str, Any] | None = None        # the random-weights feature's record, when decoded
    readout_offset_s: float | None = None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def model_record(output_dir: Path, label: str) -> dict[str, Any] | None:
    """The latest checkpoint of OUTPUT_DIR/models/desc-<label>: its config.json, weights hash and split shares."""
    checkpoint = latest_checkpoint(output_dir / names.model_dir(label))
    if checkpoint is None:
        return None
    meta = _read_json(checkpoint / "config.json")
    if not meta:
        return None
    training = meta.get("training") or {}
    n_train, n_val = int(training.get("n_train_windows", 0)), int(training.get("n_val_windows", 0))
    step = checkpoint.name.removeprefix("step-")
    return {"label": label, "checkpoint": checkpoint.name, "sha256": meta.get("weights_sha256"),
            "architecture": meta.get("model", {}), "training": training,
            "steps_trained": int(step) if step.isdigit() else None,
            "validation_share": n_val / (n_train + n_val) if n_train + n_val else None}


def _recorded_transform(transform: dict) -> dict[str, Any]:
    """The front end's options as a spectrogram sidecar's Transform records them (what was computed, whatever
    this run's options say)."""
    if transform.get("Kind") == "stft":
        keys = {"nperseg": "stft_nperseg", "noverlap": "stft_noverlap", "n_bins": "stft_n_bins"}
    else:
        keys = {name: f"superlet_{name}" for name in ("base_cycles", "order_min", "order_max", "decimation", "mode",
                                                       "definition")}
    found = {option: transform[key] for key, option in keys.items() if key in transform}
    freqs = transform.get("freqs_hz")
    if transform.get("Kind") == "superlet" and isinstance(freqs, list) and freqs:
        found.update(superlet_n_freqs=len(freqs), superlet_freq_min=min(freqs), superlet_freq_max=max(freqs))
    return found


def recorded_settings(config: RunConfig, tasks: list[str], spectrogram_sidecar: Path | None = None,
                      subjects: list[str] | None = None) -> RecordedSettings:
    settings = config.to_toml_dict()
    found = RecordedSettings(settings)
    spectrogram = _read_json(spectrogram_sidecar) if spectrogram_sidecar is not None else None
    if spectrogram:
        transform = spectrogram.get("Transform", {})
        settings["spectrogram"] = transform.get("Kind", settings["spectrogram"])
        settings.update(_recorded_transform(transform))
        reference = spectrogram.get("Preprocessing", {}).get("Reference", {})
        settings["reference"] = reference.get("scheme", settings["reference"])
    model = model_record(config.output_dir, config.model_label)
    if model is None and (config.output_dir / MODELS_DIR).is_dir():
        for folder in sorted((config.output_dir / MODELS_DIR).glob("desc-*")):
            model = model_record(config.output_dir, folder.name.removeprefix("desc-"))
            if model is not None:
                break
    if model is not None:
        found.sections.add("pretrain")
        found.model = model
        training = model["training"]
        for key, recorded in (("train_steps", "total_steps"), ("batch_size", "batch_size"),
                              ("learning_rate", "lr"), ("optimizer", "optimizer"),
                              ("mask_probability", "mask_p"), ("train_window_s", "window_s")):
            if recorded in training:
                settings[key] = training[recorded]
        trained = {Path(f).name.split("_")[0].removeprefix("sub-") for f in training.get("train_files", [])
                   + training.get("val_files", [])}
        if trained and subjects is not None:     # held out = selected but never seen by the model
            settings["holdout_participant_label"] = sorted(set(subjects) - trained)
    for task in tasks:
        decoding = _read_json(config.output_dir / names.group_table(task, "decoding", "summary", ".json"))
        if decoding:
            found.sections.add("decoding")
            settings["random_seed"] = decoding.get("RandomSeed", settings["random_seed"])
            settings["decoding_column"] = decoding.get("DecodingColumn", settings["decoding_column"])
            settings["decoding_window_s"] = decoding.get("WindowS", settings["decoding_window_s"])
            targets = decoding.get("Targets", {})
            settings["decoding_contrast"] = [f"{t['Positive']},{t['Negative']}" for t in targets.values()]
            features = decoding.get("Features", {})
            settings["decoding_features"] = list(features)
            cv = decoding.get("CrossValidation", {})
            settings["decoding_folds"] = cv.get("OuterFolds", settings["decoding_folds"])
            settings["decoding_permutations"] = cv.get("Permutations", settings["decoding_permutations"])
            if "labels shifted" in str(cv.get("PermutationScheme", "")):
                settings["decoding_permutation_scheme"] = "shift"
            found.readout_offset_s = decoding.get("ReadoutOffsetS", 0.0)
            middle = next((f.get("MiddleFrames") for f in features.values() if f.get("MiddleFrames")), None)
            if middle:
                settings["embedding_middle_frames"] = middle
            embedding = next((f for f in features.values() if f.get("Kind") == "embedding"), None)
            if embedding:
                settings["embedding_layer"] = embedding.get("Layer", settings["embedding_layer"])
                settings["embedding_pooling"] = embedding.get("Pooling", settings["embedding_pooling"])
                settings["embedding_window_s"] = embedding.get("WindowS", settings["embedding_window_s"])
            found.random_control = next((f for f in features.values() if f.get("Kind") == "random-weights"), None)
            efficiency = _read_json(config.output_dir / names.group_table(task, "dataefficiency", "scores", ".json"))
            if efficiency:
                settings["data_efficiency_sizes"] = efficiency.get("RequestedSizes", settings["data_efficiency_sizes"])
                settings["data_efficiency_draws"] = efficiency.get("Draws", settings["data_efficiency_draws"])
            else:
                settings["data_efficiency_draws"] = 0
        dimensionality = _read_json(config.output_dir / names.group_table(task, "dimensionality", "electrodes", ".json"))
        if dimensionality:
            found.sections.add("dimensionality")
            settings["random_seed"] = dimensionality.get("RandomSeed", settings["random_seed"])
            settings["dimensionality_examples"] = dimensionality.get("MaxExamples",
                                                                     settings["dimensionality_examples"])
            settings["dimensionality_threshold"] = dimensionality.get("Threshold",
                                                                      settings["dimensionality_threshold"])
    return found
