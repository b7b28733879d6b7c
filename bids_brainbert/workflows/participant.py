"""Participant level: every selected recording -> preprocessed signal -> spectrogram derivative.

Each recording is independent: one that fails is reported and the others go on; the caller turns the outcomes
into the exit code. Finished derivatives (all files present, data hash matching its sidecar) are skipped unless
``overwrite`` is set, so re-running an interrupted command finishes only what is missing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from ..bids import derivatives as deriv
from ..bids.discovery import Recording
from ..config import RunConfig, seed_everything
from ..errors import BidsBrainbertError, RecordingError
from ..io.loading import LoadedRecording, check_fits_analysis, load_recording
from ..preprocessing import (apply_reference, line_noise_description, remove_line_noise, resample_signal,
                             resampling_description)
from ..transforms.spectrogram import SpectrogramFrontEnd, spectrogram_front_end
from .embeddings import ModelSource, write_embeddings

LOGGER = logging.getLogger("bids_brainbert")


@dataclass
class RecordingOutcome:
    recording: str                       # path relative to the dataset root
    status: str                          # "written" | "skipped" | "failed"
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def subject_log_dir(config: RunConfig, subject: str, run_id: str) -> Path:
    return deriv.ensure_inside(config.output_dir, config.output_dir / f"sub-{subject}" / "log" / run_id)


def process_recording(recording: Recording, config: RunConfig, run_id: str,
                      model_source: ModelSource | None = None) -> RecordingOutcome:
    """Write the spectrogram (and, given a model, embedding) derivatives of one recording; never raises for a
    bad recording."""
    started = time.perf_counter()
    handler = _attach_subject_log(config, recording.subject, run_id)
    try:
        outcome = _process(recording, config)
        if model_source is not None and outcome.status != "failed":
            data_path = spectrogram_paths_for(config, recording)["data"]
            outcome.outputs += [str(p) for p in write_embeddings(recording, data_path, config, model_source)]
    except BidsBrainbertError as exc:
        LOGGER.error("%s", exc)
        outcome = RecordingOutcome(recording.relative_path, "failed", str(exc))
    except MemoryError:
        message = f"{recording.path}: out of memory (try a smaller --channel-batch-size or fewer --nprocs)"
        LOGGER.error("%s", message)
        outcome = RecordingOutcome(recording.relative_path, "failed", message)
    except OSError as exc:
        message = f"{exc.filename or recording.path}: {exc.strerror or exc} (disk full or not writable?)"
        LOGGER.error("%s", message)
        outcome = RecordingOutcome(recording.relative_path, "failed", message)
    except Exception as exc:  # a bug or an input we did not foresee must not stop the other recordings
        message = f"{recording.path}: unexpected error ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
        LOGGER.exception("%s", message)
        outcome = RecordingOutcome(recording.relative_path, "failed", message)
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
    if outcome.status == "failed":
        _discard_incomplete(spectrogram_paths_for(config, recording))
    outcome.seconds = time.perf_counter() - started
    return outcome


def _discard_incomplete(paths: dict[str, Path]) -> None:
    """A failed recording leaves no half derivative (say the data renamed into place but the disk filled up before
    its sidecar); a complete one (hash matching) from an earlier run is kept."""
    if not deriv.is_complete(paths):
        for path in paths.values():
            path.unlink(missing_ok=True)


def _attach_subject_log(config: RunConfig, subject: str, run_id: str) -> logging.Handler:
    if LOGGER.level == logging.NOTSET or LOGGER.level > logging.INFO:  # worker processes start unconfigured
        LOGGER.setLevel(logging.DEBUG if config.verbose else logging.INFO)
    log_dir = subject_log_dir(config, subject, run_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "bids-brainbert.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
    LOGGER.addHandler(handler)
    return handler


def _process(recording: Recording, config: RunConfig) -> RecordingOutcome:
    paths = {k: deriv.ensure_inside(config.output_dir, p)
             for k, p in deriv.spectrogram_paths(config.output_dir, recording, config.spectrogram).items()}
    for stale in deriv.remove_stale_temporaries(paths["data"].parent, recording.stem_entities):
        LOGGER.info("%s: removed %s left by an interrupted run", recording.relative_path, stale.name)
    if not config.overwrite and deriv.is_complete(paths):
        LOGGER.info("%s: complete derivative found, skipped (use --overwrite to recompute)", recording.relative_path)
        return RecordingOutcome(recording.relative_path, "skipped", "already complete",
                                [str(p) for p in paths.values()])
    LOGGER.info("%s: loading", recording.relative_path)
    loaded = load_recording(recording, include_dbs=config.include_dbs)
    check_fits_analysis(recording, loaded, config)
    for name, reason in loaded.dropped.items():
        LOGGER.info("%s: channel %s left out: %s", recording.relative_path, name, reason)
    signal, sfreq, channels, preprocessing = preprocess(loaded, config, recording)
    front_end = spectrogram_front_end(config, sfreq, str(recording.path))
    n_frames = front_end.n_frames(signal.shape[1])
    if n_frames <= 2 * front_end.edge_frames:
        LOGGER.warning("%s: recording (%.1f s) is shorter than the transform's edge zone; every frame is affected "
                       "by zero padding", recording.relative_path, signal.shape[1] / sfreq)
    shape = signal.shape
    with staged_signal(signal, config.work_dir, recording.stem_entities) as staged:
        del signal  # only the staged copy remains; batches are read from it
        data_hash = write_spectrogram(paths["data"], staged, front_end, config.channel_batch_size,
                                      desc=recording.stem_entities)
    deriv.atomic_write_tsv(paths["channels"], channels)
    deriv.atomic_write_json(paths["channels_sidecar"], channel_columns_description(channels))
    sidecar = spectrogram_sidecar(recording, config, front_end, preprocessing, shape, n_frames, data_hash,
                                  channels_file=paths["channels"].name)
    if loaded.coordsystem is not None:
        sidecar["CoordinateSystem"] = loaded.coordsystem
    deriv.atomic_write_json(paths["sidecar"], sidecar)  # written last: its hash marks the derivative complete
    LOGGER.info("%s: wrote %s (%d channels x %d frames x %d frequencies)", recording.relative_path,
                paths["data"].name, shape[0], n_frames, len(front_end.freqs_hz))
    return RecordingOutcome(recording.relative_path, "written", "", [str(p) for p in paths.values()])


def preprocess(loaded: LoadedRecording, config: RunConfig, recording: Recording):
    """Notch, re-reference and resample; returns (signal, sfreq, channel table, description for the sidecar)."""
    data = loaded.data
    description: dict = {"InputSamplingFrequency": loaded.sfreq}
    if config.line_noise and loaded.line_freq:
        notch = {"harmonics_up_to_hz": config.line_noise_max_hz, "quality": config.line_noise_quality}
        data = remove_line_noise(data, loaded.sfreq, loaded.line_freq, **notch)
        description["LineNoise"] = line_noise_description(loaded.sfreq, loaded.line_freq, **notch)
    else:
        reason = "disabled (--no-line-noise)" if not config.line_noise else "no PowerLineFrequency in *_ieeg.json"
        description["LineNoise"] = {"applied": False, "reason": reason}
        if config.line_noise:
            LOGGER.warning("%s: line noise not removed: %s", recording.relative_path, reason)
    referenced = apply_reference(data, loaded.ch_names, loaded.ch_types, config.reference,
                                 groups=loaded.groups or None, min_neighbours=config.laplacian_min_neighbours)
    for name, reason in referenced.dropped.items():
        LOGGER.info("%s: channel %s left out by re-referencing: %s", recording.relative_path, name, reason)
    if not referenced.ch_names:
        raise RecordingError(f"{recording.path}: no channel left after '{config.reference}' re-referencing "
                             f"(try --reference car or --laplacian-min-neighbours 1)")
    description["Reference"] = referenced.description
    description["ChannelsLeftOut"] = {**loaded.dropped, **referenced.dropped}   # name -> reason
    target = config.sampling_rate or None  # 0 = keep the recording's own rate
    signal, sfreq = resample_signal(referenced.data, loaded.sfreq, target)
    description["Resampling"] = resampling_description(loaded.sfreq, target)
    channels = channel_table(loaded, referenced)
    return signal, sfreq, channels, description


CHANNEL_COLUMNS = {
    "sources": "Input channels this row was computed from (re-referencing), comma separated",
    "x": "Mean x coordinate of the source contacts (electrodes.tsv units, see the sidecar's CoordinateSystem)",
    "y": "Mean y coordinate of the source contacts",
    "z": "Mean z coordinate of the source contacts",
    "group": "Electrode group (shaft, grid or strip) from electrodes.tsv",
    "region": "Brain region from electrodes.tsv",
    "hemisphere": "Hemisphere from electrodes.tsv",
}


def channel_table(loaded: LoadedRecording, referenced) -> pd.DataFrame:
    """Row order of the derivative's channel axis as a BIDS iEEG channels table, with electrode coordinates,
    group and region carried over from electrodes.tsv."""
    rows = []
    for name, ch_type, sources in zip(referenced.ch_names, referenced.ch_types, referenced.sources):
        row = {"name": name, "type": ch_type.upper(), "units": "V", "low_cutoff": "n/a", "high_cutoff": "n/a",
               "status": "good", "sources": ",".join(sources)}
        if loaded.electrodes is not None:
            known = [s for s in sources if s in loaded.electrodes.index]
            for column in ("x", "y", "z"):
                if column in loaded.electrodes.columns and known:
                    # a bipolar or referenced channel sits at the centre of the contacts it is built from
                    row[column] = float(pd.to_numeric(loaded.electrodes.loc[known, column], errors="coerce").mean())
            for column in ("group", "region", "hemisphere"):
                if column in loaded.electrodes.columns and known:
                    row[column] = loaded.electrodes.loc[known[0], column]
        rows.append(row)
    return pd.DataFrame(rows)


def channel_columns_description(channels: pd.DataFrame) -> dict:
    return {column: {"Description": text} for column, text in CHANNEL_COLUMNS.items() if column in channels.columns}


@contextmanager
def staged_signal(signal: np.ndarray, work_dir: Path | None, name: str) -> Iterator[np.ndarray]:
    """The preprocessed signal as a float32 memory map in the work directory, removed afterwards.

    The transform then reads channel batches from disk, so the intermediate copies made while preprocessing can
    be freed before the spectrogram is computed.
    """
    parent = Path(work_dir) if work_dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=parent))
    try:
        staged = np.lib.format.open_memmap(scratch / "signal.npy", mode="w+", dtype=np.float32, shape=signal.shape)
        staged[:] = signal
        staged.flush()
        yield np.load(scratch / "signal.npy", mmap_mode="r")
        del staged
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_spectrogram(path: Path, signal: np.ndarray, front_end: SpectrogramFrontEnd, batch_size: int,
                      desc: str = "") -> str:
    """Stream channel batches into a memory-mapped (channel, time, frequency) float32 .npy; returns its sha256."""
    n_channels, n_samples = signal.shape
    shape = (n_channels, front_end.n_frames(n_samples), len(front_end.freqs_hz))
    with deriv.atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        starts = range(0, n_channels, batch_size)
        for start in tqdm(starts, desc=desc or path.name, unit="batch", leave=False, disable=None):
            stop = min(start + batch_size, n_channels)
            batch = signal[start:stop]  # a memory-map slice: the transform reads it chunk by chunk
            out[start:stop] = front_end.transform(batch).transpose(0, 2, 1)
        out.flush()
        del out
        digest = deriv.sha256_of_file(tmp)
    return digest


def spectrogram_sidecar(recording: Recording, config: RunConfig, front_end: SpectrogramFrontEnd,
                        preprocessing: dict, signal_shape: tuple[int, int], n_frames: int, data_hash: str,
                        channels_file: str) -> dict:
    return {
        "Description": f"{front_end.kind} time-frequency magnitude per channel of the preprocessed iEEG signal",
        "Sources": [deriv.bids_uri(recording)],
        "Axes": ["channel", "time", "frequency"],
        "Shape": [signal_shape[0], n_frames, len(front_end.freqs_hz)],
        "DataType": "float32",
        "Units": "V",
        "ChannelsFile": channels_file,
        "FrequenciesHz": [float(f) for f in front_end.freqs_hz],
        "SamplingFrequency": front_end.frame_rate_hz,
        "StartTime": front_end.first_frame_time_s,
        "TimeAxisDefinition": "time of frame k in seconds from the first sample = StartTime + k / SamplingFrequency",
        "EdgeFrames": front_end.edge_frames,
        "SignalSamplingFrequency": front_end.sfreq,
        "Preprocessing": preprocessing,
        "Transform": {"Kind": front_end.kind, **front_end.params},
        "RandomSeed": config.random_seed,
        "GeneratedBy": [deriv.generated_by()],
        "SoftwareVersion": __version__,
        "DataSha256": data_hash,
    }


def _worker_init(seed: int) -> None:
    # one thread per worker: --nprocs recordings in parallel must not oversubscribe the cores
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    seed_everything(seed)


def run_participant_level(config: RunConfig, recordings: list[Recording], run_id: str,
                          model_source: ModelSource | None = None) -> list[RecordingOutcome]:
    """Process recordings, ``config.nprocs`` at a time; outcomes in input order."""
    if config.nprocs <= 1 or len(recordings) == 1:
        return [process_recording(r, config, run_id, model_source)
                for r in tqdm(recordings, desc="recordings", unit="rec", disable=None)]
    with ProcessPoolExecutor(max_workers=config.nprocs, mp_context=get_context("spawn"),
                             initializer=_worker_init, initargs=(config.random_seed,)) as pool:
        futures = [pool.submit(process_recording, r, config, run_id, model_source) for r in recordings]
        return [f.result() for f in tqdm(futures, desc="recordings", unit="rec", disable=None)]


def spectrogram_paths_for(config: RunConfig, recording: Recording) -> dict[str, Path]:
    return deriv.spectrogram_paths(config.output_dir, recording, config.spectrogram)
