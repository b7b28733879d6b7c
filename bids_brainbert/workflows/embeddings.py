"""The embeddings step: a frozen model applied to a recording's spectrogram derivative, written as derivatives
(the arrays themselves are computed by :mod:`bids_brainbert.frozen_embeddings`).

Per recording and model label ``<label>`` (default ``brainbert``)::

    <entities>_desc-<label>_embeddings.npy        (channel, window, feature) sliding windows
    <entities>_desc-<label>Events_embeddings.npy  (channel, event, feature) windows centred on events.tsv onsets
    <entities>_desc-<label>Events_embeddings.tsv  the events kept (events.tsv rows whose window fits)
    + a JSON sidecar each (model sha256, layer, pooling, window, stride, sources)

Next to every model the same files are written for its random-weights control (label ``<label>Random``: the
same architecture, untrained, seeded by ``--random-seed``; see :mod:`bids_brainbert.model.random_weights`)
unless ``--decoding-features`` leaves ``random`` out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..bids import derivatives as deriv
from ..bids import names
from ..bids.discovery import Recording
from ..config import RunConfig
from ..fingerprints import fingerprint, stale_reason, tree_sha256
from ..params import EmbeddingSettings
from ..devices import resolve_device
from ..frozen_embeddings import EmbeddingParams, event_locked_embeddings, windowed_embeddings
from ..errors import CheckpointError, RecordingError, UsageError
from ..model import BrainBertPretrainModel, load_checkpoint, weights_sha256
from ..model.checkpoints import PUBLISHED_SUFFIXES, check_input_width
from ..precision import precision_record, resolve_precision
from ..model.random_weights import INITIALISATION, random_label, random_weights_model, state_sha256
from ..training import latest_checkpoint
from ..windowing import RECORDING_WINDOWING, resolve_windowing
from .window_exact import window_exact_for

LOGGER = logging.getLogger("bids_brainbert")


@dataclass(frozen=True)
class ModelSource:
    """Where the embedding model comes from, resolved once per run."""

    path: Path                   # checkpoint directory, .safetensors or published .pth
    label: str                   # desc label of the embedding files
    sha256: str                  # of the weights file
    published: bool              # the original BrainBERT release format (STFT input)
    random_seed: int | None = None   # set: the untrained random-weights control of the model at ``path``


def group_model_root(config: RunConfig) -> Path:
    return deriv.ensure_inside(config.output_dir, config.output_dir / names.model_dir(config.model_label))


def find_model(config: RunConfig) -> ModelSource | None:
    """``--model`` if given, else the group model already trained into OUTPUT_DIR/models, else None."""
    if config.model is not None:
        path = Path(config.model)
        if not path.exists():
            raise CheckpointError(f"{path}: model checkpoint not found")
    else:
        path = latest_checkpoint(group_model_root(config))
        if path is None:
            return None
    weights = path / "model.safetensors" if path.is_dir() else path
    if not weights.is_file():
        raise CheckpointError(f"{path}: no model.safetensors in this checkpoint directory")
    published = weights.suffix.lower() in PUBLISHED_SUFFIXES
    spectrogram = config.spectrogram_params()
    if published and spectrogram.kind != "stft":
        raise UsageError(f"{path}: the published BrainBERT weights take STFT input: add --spectrogram stft")
    # a corrupt or mis-shaped checkpoint fails here (exit 65), before anything is written
    _, model_config, _ = load_checkpoint(path)
    check_input_width(model_config, spectrogram.n_freqs, path)
    return ModelSource(path=path, label=config.model_label, sha256=weights_sha256(weights), published=published)


@lru_cache(maxsize=2)
def _load_model(path: Path, device: str) -> BrainBertPretrainModel:
    model, _, _ = load_checkpoint(path, device=device)
    return model


@lru_cache(maxsize=2)
def _random_model(path: Path, device: str, seed: int) -> BrainBertPretrainModel:
    return random_weights_model(_load_model(path, device).config, seed).to(device)


def model_for(source: ModelSource, device: str) -> BrainBertPretrainModel:
    if source.random_seed is not None:
        return _random_model(source.path, device, source.random_seed)
    return _load_model(source.path, device)


def random_control_source(source: ModelSource, config: RunConfig) -> ModelSource:
    """The random-weights twin of ``source`` (same architecture, seeded by --random-seed)."""
    model = _random_model(source.path, resolve_device(config.device), config.random_seed)
    return ModelSource(path=source.path, label=random_label(source.label), sha256=state_sha256(model),
                       published=False, random_seed=config.random_seed)


def wants_random_control(config: RunConfig) -> bool:
    return "random" in config.decoding_features




def embedding_paths(spectrogram_data: Path, label: str) -> dict[str, Path]:
    files = names.embedding_files(names.recording_stem(spectrogram_data.name), label)
    return {role: spectrogram_data.parent / name for role, name in files.items()}


def embedding_params(settings: EmbeddingSettings) -> EmbeddingParams:
    """The event embeddings' parameters, with the precision resolved for this machine."""
    return EmbeddingParams(window_s=settings.window_s, stride_s=settings.stride_s or None, layer=settings.layer,
                           pooling=settings.pooling, middle_frames=settings.middle_frames,
                           batch_size=settings.batch_size,
                           precision=resolve_precision(settings.precision, resolve_device(settings.device)))


def read_events(recording: Recording) -> pd.DataFrame | None:
    path = recording.path.with_name(f"{recording.stem_entities}_events.tsv")
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: unreadable events table ({str(exc).splitlines()[0]})") from None
    if "onset" not in table.columns:
        raise RecordingError(f"{path}: events.tsv has no 'onset' column")
    return table


def _save_array(path: Path, array: np.ndarray) -> str:
    with deriv.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=np.float32))
        return deriv.sha256_of_file(tmp)


def write_embeddings(recording: Recording, spectrogram_data: Path, config: RunConfig, model_source: ModelSource
                     ) -> list[Path]:
    """Write the embedding derivatives of one recording (sliding windows; event windows when it has events.tsv)
    that are missing or stale (see :mod:`bids_brainbert.fingerprints`); returns the files."""
    paths = {k: deriv.ensure_inside(config.output_dir, p) for k, p in
             embedding_paths(spectrogram_data, model_source.label).items()}
    settings = config.embedding_settings()
    params = embedding_params(settings)
    events = read_events(recording)
    spec_sidecar = deriv.read_json(spectrogram_data.with_suffix(".json"))
    expected = embedding_fingerprints(recording, spec_sidecar, settings, params, model_source)
    windows_todo = config.overwrite or _stale(recording, paths["windows"], paths["windows_sidecar"],
                                              expected["windows"])
    events_todo = events is not None and (config.overwrite or _stale(recording, paths["events"],
                                                                     paths["events_sidecar"], expected["events"]))
    if windows_todo or events_todo:
        _compute(recording, spectrogram_data, spec_sidecar, config, model_source, settings, params, paths,
                 expected, events if events_todo else None, windows_todo)
    written = [p for p in paths.values() if p.exists()]
    if model_source.random_seed is None and wants_random_control(config):
        written += write_embeddings(recording, spectrogram_data, config, random_control_source(model_source, config))
    return written


def _stale(recording: Recording, data: Path, sidecar: Path, expected: dict) -> bool:
    """Whether an embedding file must be (re)computed: missing, damaged, or its fingerprint is not this run's
    (said in one log line)."""
    if not deriv.is_complete({"data": data, "sidecar": sidecar}):
        return True
    reason = stale_reason(deriv.read_json(sidecar).get("Fingerprint"), expected)
    if reason is not None:
        LOGGER.info("%s: recomputing %s: %s", recording.relative_path, data.name, reason)
    return reason is not None


def embedding_fingerprints(recording: Recording, spec_sidecar: dict, settings: EmbeddingSettings,
                           params: EmbeddingParams, model_source: ModelSource) -> dict[str, dict]:
    """The fingerprints of the sliding-window and the event embeddings: the model's weights, the spectrogram
    derivative (its fingerprint covers the preprocessing, which the window-exact input repeats), the settings
    that shape each and, for the events, the events table."""
    shaping = settings.shaping()
    common = {"model": {"Sha256": model_source.sha256, "Published": model_source.published,
                        "RandomSeed": model_source.random_seed},
              "layer": shaping["layer"], "window_s": shaping["window_s"],
              "middle_frames": shaping["middle_frames"], "precision": params.precision,
              "windowing": resolve_windowing(settings.windowing, model_source.published)}
    spectrogram = {"spectrogram": spec_sidecar.get("DataSha256", ""),
                   "spectrogramFingerprint": (spec_sidecar.get("Fingerprint") or {}).get("Sha256", "")}
    events_file = recording.path.with_name(f"{recording.stem_entities}_events.tsv")
    events_hash = {"events": tree_sha256(events_file)} if events_file.exists() else {}
    return {
        "windows": fingerprint("embeddings", {**common, "pooling": shaping["window_pooling"],
                                              "stride_s": shaping["stride_s"]}, spectrogram),
        "events": fingerprint("embeddings", {**common, "pooling": shaping["pooling"],
                                             "readout_offset_s": shaping["readout_offset_s"]},
                              {**spectrogram, **events_hash}),
    }


def _compute(recording: Recording, spectrogram_data: Path, spec_sidecar: dict, config: RunConfig,
             model_source: ModelSource, settings: EmbeddingSettings, params: EmbeddingParams,
             paths: dict[str, Path], expected: dict[str, dict], events: pd.DataFrame | None,
             windows_todo: bool) -> None:
    """Compute and write the sliding-window embeddings (``windows_todo``) and the event embeddings (given
    ``events``)."""
    spectrogram = np.load(spectrogram_data, mmap_mode="r")
    model = model_for(model_source, resolve_device(settings.device))
    device = next(model.parameters()).device
    rate, start = float(spec_sidecar["SamplingFrequency"]), float(spec_sidecar.get("StartTime", 0.0))
    common = embedding_sidecar_common(recording, spectrogram_data, config, model_source, params, model)
    # BrainBERT reads decoding probes from the middle frames but measures dimensionality on all-frames means
    window_params = replace(params, pooling=settings.window_pooling)
    # BrainBERT's per-window input (published weights, --embedding-windowing brainbert), else the derivative's
    exact = window_exact_for(recording, config.preprocessing_params(), config.spectrogram_params(), settings,
                             config.work_dir, model_source.published, spectrogram.shape[0], model, window_params,
                             params, events, device)
    common.update(windowing_fields(exact))
    if windows_todo:
        embeddings, centres = exact.windows if exact else windowed_embeddings(
            spectrogram, rate, model, window_params, edge_frames=int(spec_sidecar.get("EdgeFrames", 0)),
            start_time_s=start, device=device)
        digest = _save_array(paths["windows"], embeddings)
        deriv.atomic_write_json(paths["windows_sidecar"], {
            **common, **pooling_fields(window_params), "Description": "sliding-window embeddings per channel",
            "Axes": ["channel", "window", "feature"], "Shape": list(embeddings.shape),
            "WindowCentresS": [round(float(c), 6) for c in centres], "DataSha256": digest,
            "Fingerprint": expected["windows"]})
        LOGGER.info("%s: wrote %s embeddings (%d channels, %d windows)", recording.relative_path,
                    model_source.label, embeddings.shape[0], embeddings.shape[1])
    if events is not None:
        # the middle frames (the readout) of a window centred on onset + offset are centred there
        onsets = pd.to_numeric(events["onset"], errors="coerce").to_numpy(dtype=float) + settings.readout_offset_s
        event_embeddings, valid = exact.events if exact else event_locked_embeddings(
            spectrogram, rate, np.nan_to_num(onsets, nan=-1e9), model, params, start_time_s=start, device=device)
        kept = events.loc[valid].reset_index(drop=True)
        if (~valid).any():
            LOGGER.info("%s: %d of %d events too close to the recording edges for a %.1f s window, skipped",
                        recording.relative_path, int((~valid).sum()), len(valid), params.window_s)
        deriv.atomic_write_tsv(paths["events_table"], kept)
        digest = _save_array(paths["events"], event_embeddings)
        deriv.atomic_write_json(paths["events_sidecar"], {
            **common, "Description": "embeddings of windows centred on each events.tsv onset",
            **windowing_fields(exact, events=True),
            "Axes": ["channel", "event", "feature"], "Shape": list(event_embeddings.shape),
            "ReadoutOffsetS": settings.readout_offset_s,
            "EventsFile": paths["events_table"].name, "DataSha256": digest, "Fingerprint": expected["events"]})
        LOGGER.info("%s: wrote %s event embeddings (%d channels, %d events)", recording.relative_path,
                    model_source.label, event_embeddings.shape[0], event_embeddings.shape[1])


def windowing_fields(exact, events: bool = False) -> dict:
    """Sidecar record of how the model input was windowed and normalised."""
    windowing = (exact.events_description if events else exact.description) if exact else RECORDING_WINDOWING
    return {"Windowing": windowing, "Normalization": windowing["Normalization"]}


def pooling_fields(params: EmbeddingParams) -> dict:
    return {"Pooling": params.pooling, "MiddleFrames": params.middle_frames if params.pooling == "middle" else None}


def embedding_sidecar_common(recording: Recording, spectrogram_data: Path, config: RunConfig,
                             model_source: ModelSource, params: EmbeddingParams,
                             model: BrainBertPretrainModel) -> dict:
    relative = spectrogram_data.relative_to(config.output_dir).as_posix()
    return {
        "Sources": [f"bids::{relative}", deriv.bids_uri(recording)],
        "ChannelsFile": names.channels_of(spectrogram_data.name),
        "Model": {"Label": model_source.label, "Sha256": model_source.sha256,
                  "Format": ("random-weights" if model_source.random_seed is not None
                             else "brainbert-published" if model_source.published else "bids-brainbert"),
                  "Config": model.config.to_dict(),
                  **({"RandomWeights": {"Seed": model_source.random_seed, "Initialisation": INITIALISATION,
                                        "ArchitectureOf": str(model_source.path.name)}}
                     if model_source.random_seed is not None else {})},
        "Layer": params.layer,
        "Precision": precision_record(config.precision, params.precision),
        **pooling_fields(params),
        "WindowS": params.window_s,
        "StrideS": params.stride_s or params.window_s,
        "Normalization": "z-score per frequency within each window",
        "RandomSeed": config.random_seed,
        "GeneratedBy": [deriv.generated_by()],
        "SoftwareVersion": __version__,
    }
