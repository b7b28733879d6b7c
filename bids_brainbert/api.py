"""A small Python API for pipelines that call the steps themselves (Snakemake, Nipype, MNE-BIDS-Pipeline).

Each function does one step of what ``bids-brainbert ... participant`` does, with the same defaults and the same
code, on plain arrays and paths: nothing is written. Options are the command line's, in snake_case
(``reference="car"``, ``superlet_n_freqs=20``, ``sampling_rate=1024``); each function builds only the parameters
of its own step (:mod:`bids_brainbert.params`, where their defaults and checks live).

>>> from bids_brainbert import api
>>> recording = api.load_preprocessed("rawdata/sub-01/ieeg/sub-01_task-x_ieeg.edf")       # doctest: +SKIP
>>> spectrogram = api.compute_spectrogram(recording.signal, recording.sfreq)              # doctest: +SKIP
>>> model = api.load_model("derivatives/bids-brainbert/models/desc-brainbert")            # doctest: +SKIP
>>> embeddings, centres_s = api.sliding_embeddings(spectrogram, model)                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .bids import names
from .bids.discovery import Recording, parse_entities
from .errors import UsageError
from .params import PreprocessingParams, SpectrogramParams

__all__ = ["PreprocessedRecording", "Spectrogram", "compute_spectrogram", "event_embeddings", "find_derivatives",
           "load_model", "load_preprocessed", "read_spectrogram", "sliding_embeddings", "window_exact_embeddings"]

LOGGER = logging.getLogger("bids_brainbert")
PathLike = str | os.PathLike


@dataclass
class PreprocessedRecording:
    """One recording after loading, notch filtering, re-referencing and resampling.

    Attributes
    ----------
    signal : ndarray, shape (n_channels, n_samples)
        float64, volts.
    sfreq : float
        Sampling rate of ``signal`` in Hz.
    channels : DataFrame
        One row per signal row (name, type, source contacts, coordinates, group, region).
    events : DataFrame or None
        The recording's events (onset and duration in seconds, trial_type), if any.
    provenance : dict
        What was done, as recorded in the spectrogram sidecar's ``Preprocessing``.
    """

    signal: np.ndarray
    sfreq: float
    channels: pd.DataFrame
    events: pd.DataFrame | None
    provenance: dict[str, Any]


@dataclass
class Spectrogram:
    """A spectrogram, computed here or read back from our derivatives.

    Attributes
    ----------
    data : ndarray, shape (n_channels, n_frames, n_freqs)
        float32 magnitude (a read-only memory map when read from disk).
    freqs_hz : ndarray, shape (n_freqs,)
    frame_rate_hz : float
        Frames per second; frame ``k`` is at ``start_time_s + k / frame_rate_hz`` seconds.
    start_time_s : float
    edge_frames : int
        Frames at each end influenced by zero padding (embedding windows skip them).
    channels : DataFrame or None
        Row order of ``data`` (from ``*_channels.tsv``) when read from a derivative.
    sidecar : dict
        The derivative's JSON sidecar, or the transform's parameters when computed here.
    """

    data: np.ndarray
    freqs_hz: np.ndarray
    frame_rate_hz: float
    start_time_s: float = 0.0
    edge_frames: int = 0
    channels: pd.DataFrame | None = None
    sidecar: dict[str, Any] = dataclasses.field(default_factory=dict)


def step_options(options: dict[str, Any], *steps, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``options`` checked against the command-line options (snake_case) of ``steps``' parameters (and
    ``extra`` names); an unknown name raises UsageError."""
    known = set(extra).union(*(_option_names(step) for step in steps))
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)} (use the command line's names in snake_case: "
                         f"{', '.join(sorted(known))})")
    return options


def _option_names(step) -> set[str]:
    from .params import StftOptions, SuperletSettings

    if step is SpectrogramParams:   # its front ends' options too
        return {*step.OPTIONS.values(), *SuperletSettings.OPTIONS.values(), *StftOptions.OPTIONS.values()}
    return set(step.OPTIONS.values())


def _recording(ieeg_file: PathLike) -> Recording:
    path = Path(ieeg_file).absolute()
    entities = parse_entities(path.name)
    if entities is None or not path.exists():
        raise UsageError(f"{path}: not an existing BIDS iEEG recording (sub-<label>[_...]_ieeg.<ext>)")
    return Recording(path, entities)


def load_preprocessed(ieeg_file: PathLike, **options: Any) -> PreprocessedRecording:
    """Load a BIDS iEEG recording and preprocess it exactly as the participant level does.

    Parameters
    ----------
    ieeg_file : path
        A ``*_ieeg.{edf,bdf,vhdr,set}`` file inside a BIDS dataset (its sidecars are read too).
    **options
        Command-line options in snake_case, e.g. ``reference="car"``, ``sampling_rate=1024``,
        ``line_noise=False``, ``include_dbs=True``.

    Returns
    -------
    PreprocessedRecording
    """
    from .io.loading import load_recording
    from .workflows.participant import preprocess

    params = PreprocessingParams.from_options(step_options(options, PreprocessingParams))
    recording = _recording(ieeg_file)
    loaded = load_recording(recording, include_dbs=params.include_dbs)
    signal, sfreq, channels, provenance = preprocess(loaded, params, recording)
    return PreprocessedRecording(signal=signal, sfreq=sfreq, channels=channels, events=loaded.events,
                                 provenance=provenance)


def compute_spectrogram(signal: np.ndarray, sfreq: float, **options: Any) -> Spectrogram:
    """Superlet (default) or STFT spectrogram of a preprocessed signal, as in our derivatives.

    Parameters
    ----------
    signal : ndarray, shape (n_channels, n_samples)
        Volts, e.g. :attr:`PreprocessedRecording.signal`.
    sfreq : float
        Sampling rate in Hz.
    **options
        ``spectrogram="stft"`` and the ``superlet_*`` / ``stft_*`` options of the command line.

    Returns
    -------
    Spectrogram
        ``data`` of shape (n_channels, n_frames, n_freqs), float32.
    """
    from .transforms.spectrogram import spectrogram_front_end

    params = SpectrogramParams.from_options(step_options(options, SpectrogramParams))
    front_end = spectrogram_front_end(params, float(sfreq), "signal")
    # the participant level stages the preprocessed signal as float32 before the transform: do the same, so
    # that this gives the very numbers of our derivatives
    signal = np.atleast_2d(np.asarray(signal, dtype=np.float32)).astype(np.float64)
    data = front_end.transform(signal).transpose(0, 2, 1)  # (channel, freq, time) -> (channel, time, freq)
    return Spectrogram(data=np.ascontiguousarray(data), freqs_hz=np.asarray(front_end.freqs_hz),
                       frame_rate_hz=front_end.frame_rate_hz, start_time_s=front_end.first_frame_time_s,
                       edge_frames=front_end.edge_frames,
                       sidecar={"Transform": {"Kind": front_end.kind, **front_end.params}})


def read_spectrogram(path: PathLike) -> Spectrogram:
    """Read one of our ``*_spectrogram.npy`` derivatives back (memory-mapped) with its sidecar and channels.

    Parameters
    ----------
    path : path
        The ``.npy`` file (or its ``.json`` sidecar).

    Returns
    -------
    Spectrogram
    """
    data_path = Path(path).with_suffix(".npy")
    sidecar = json.loads(data_path.with_suffix(".json").read_text(encoding="utf-8"))
    channels_file = data_path.with_name(sidecar.get("ChannelsFile", names.channels_of(data_path.name)))
    channels = pd.read_csv(channels_file, sep="\t", na_values=["n/a"], keep_default_na=False)
    return Spectrogram(data=np.load(data_path, mmap_mode="r"), freqs_hz=np.asarray(sidecar["FrequenciesHz"]),
                       frame_rate_hz=float(sidecar["SamplingFrequency"]),
                       start_time_s=float(sidecar.get("StartTime", 0.0)),
                       edge_frames=int(sidecar.get("EdgeFrames", 0)), channels=channels, sidecar=sidecar)


def load_model(path: PathLike, device: str = "cpu"):
    """Load a BrainBERT model for embeddings.

    Parameters
    ----------
    path : path
        A group-level model folder (``OUTPUT_DIR/models/desc-<label>``: its newest checkpoint is used), one
        checkpoint folder or its ``model.safetensors``, or the published ``.pth`` (loaded with
        ``weights_only=True``; it takes STFT input).
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    BrainBertPretrainModel
        In eval mode on ``device``.
    """
    from .model import load_checkpoint
    from .training import latest_checkpoint

    path = Path(path)
    if path.is_dir() and (path / "checkpoints").is_dir():
        newest = latest_checkpoint(path)
        if newest is None:
            raise UsageError(f"{path}: no complete checkpoint under checkpoints/")
        path = newest
    model, _, _ = load_checkpoint(path, device=device)
    return model


def _embedding_params(options: dict[str, Any]):
    from .frozen_embeddings import EmbeddingParams

    return EmbeddingParams(**options)


def sliding_embeddings(spectrogram: Spectrogram, model, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of sliding windows per channel, as in ``*_desc-<label>_embeddings.npy``.

    Parameters
    ----------
    spectrogram : Spectrogram
    model : BrainBertPretrainModel
        From :func:`load_model`.
    **options
        ``window_s`` (5), ``stride_s`` (= window), ``layer`` (-1), ``pooling`` ("mean": all frames, as the
        command line's sliding windows, or "middle"), ``middle_frames`` (10), ``batch_size`` (64).

    Returns
    -------
    embeddings : ndarray, shape (n_channels, n_windows, d_model)
    centres_s : ndarray, shape (n_windows,)
        Window centres in seconds from the recording's first sample.
    """
    from .frozen_embeddings import windowed_embeddings

    device = next(model.parameters()).device
    options = {"pooling": "mean", **options}
    return windowed_embeddings(spectrogram.data, spectrogram.frame_rate_hz, model, _embedding_params(options),
                               edge_frames=spectrogram.edge_frames, start_time_s=spectrogram.start_time_s,
                               device=device)


def event_embeddings(spectrogram: Spectrogram, onsets_s: np.ndarray, model,
                     **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of windows centred on event onsets, as in ``*_desc-<label>Events_embeddings.npy``.

    Parameters
    ----------
    spectrogram : Spectrogram
    onsets_s : array of float
        Onsets in seconds (e.g. ``events["onset"]``).
    model : BrainBertPretrainModel
    **options
        As for :func:`sliding_embeddings`.

    Returns
    -------
    embeddings : ndarray, shape (n_channels, n_kept_events, d_model)
    kept : ndarray of bool, shape (n_events,)
        False for events whose window would leave the recording.
    """
    from .frozen_embeddings import event_locked_embeddings

    device = next(model.parameters()).device
    return event_locked_embeddings(spectrogram.data, spectrogram.frame_rate_hz, np.asarray(onsets_s, float), model,
                                   _embedding_params(options), start_time_s=spectrogram.start_time_s, device=device)


def window_exact_embeddings(signal: np.ndarray, sfreq: float, model, onsets_s: np.ndarray | None = None,
                            window_pooling: str = "mean", **options: Any) -> dict[str, Any]:
    """Embeddings with every window transformed and normalised alone, as BrainBERT's code built its input (what
    ``--embedding-windowing brainbert`` writes; the default for the published weights).

    Parameters
    ----------
    signal : ndarray, shape (n_channels, n_samples)
        Preprocessed signal (e.g. :func:`load_preprocessed`'s).
    sfreq : float
        Its sampling rate in Hz.
    model : BrainBertPretrainModel
    onsets_s : array of float, optional
        Event onsets in seconds from the first sample: their windows are embedded too.
    window_pooling : str
        Readout of the sliding windows ("mean", as the command line, or "middle").
    **options
        The front end's command-line options (``spectrogram="stft"`` for the published weights, ``stft_*``,
        ``superlet_*``) and the embedding options of :func:`sliding_embeddings` (``pooling`` is the events').

    Returns
    -------
    dict
        ``windows`` (n_channels, n_windows, d_model), ``centres_s`` (n_windows,), ``events`` (n_channels,
        n_kept, d_model) and ``kept`` (n_events,) bool (None without onsets), ``windowing`` and
        ``events_windowing`` (as in the sidecars).
    """
    from .frozen_embeddings import EmbeddingParams
    from .transforms.spectrogram import spectrogram_front_end
    from .windowing import window_exact_embeddings as embed

    embedding_names = {f.name for f in dataclasses.fields(EmbeddingParams)}
    params = _embedding_params({k: v for k, v in options.items() if k in embedding_names})
    front_end_options = step_options({k: v for k, v in options.items() if k not in embedding_names},
                                     SpectrogramParams, extra=tuple(embedding_names))
    front_end = spectrogram_front_end(SpectrogramParams.from_options(front_end_options), float(sfreq), "signal")
    onsets = None if onsets_s is None else np.asarray(onsets_s, float)
    result = embed(np.atleast_2d(np.asarray(signal)), front_end, model,
                   dataclasses.replace(params, pooling=window_pooling), params, onsets,
                   next(model.parameters()).device)
    (windows, centres), events = result.windows, result.events
    return {"windows": windows, "centres_s": centres, "events": None if events is None else events[0],
            "kept": None if events is None else events[1], "windowing": result.description,
            "events_windowing": result.events_description}


def find_derivatives(output_dir: PathLike, suffix: str = "spectrogram", *, as_layout: bool = False):
    """Table of our derivative files under ``output_dir``, one row per file, with their BIDS entities; or, with
    ``as_layout=True``, a ``bids.BIDSLayout`` over the whole derivative dataset (models included, see
    :func:`bids_brainbert.bids.pybids.derivatives_layout`) for pipelines that query with PyBIDS.

    Parameters
    ----------
    output_dir : path
        The derivative dataset root (the command's ``OUTPUT_DIR``).
    suffix : str
        ``spectrogram`` or ``embeddings`` (the table only).
    as_layout : bool
        Return the PyBIDS layout instead of the table.

    Returns
    -------
    DataFrame or bids.BIDSLayout
        Columns ``subject``, ``session``, ``task``, ``acquisition``, ``run`` (absent entities are None),
        ``desc`` and ``path``, sorted by path.
    """
    if as_layout:
        from .bids.pybids import derivatives_layout

        return derivatives_layout(output_dir)
    rows = []
    for path in sorted(Path(output_dir).glob(f"sub-*/**/*_{suffix}.npy")):
        entities = dict(pair.split("-", 1) for pair in path.name[:-len(f"_{suffix}.npy")].split("_") if "-" in pair)
        rows.append({"subject": entities.get("sub"), "session": entities.get("ses"), "task": entities.get("task"),
                     "acquisition": entities.get("acq"), "run": entities.get("run"), "desc": entities.get("desc"),
                     "path": path})
    return pd.DataFrame(rows, columns=["subject", "session", "task", "acquisition", "run", "desc", "path"])
