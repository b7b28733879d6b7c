"""Participant level: every selected recording -> preprocessed signal -> spectrogram derivative.

Each recording is independent: one that fails is reported and the others go on; the caller turns the outcomes
into the exit code. Finished derivatives (all files present, data hash matching its sidecar) are skipped unless
``overwrite`` is set, so re-running an interrupted command finishes only what is missing.
"""

from __future__ import annotations

import logging
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from ..bids import derivatives as deriv
from ..bids import names
from ..bids.discovery import Recording
from ..config import RunConfig, seed_everything
from ..errors import OneLineFormatter, RecordingError
from ..interrupts import install_worker_handlers, working
from ..io.loading import (LoadedRecording, OpenedRecording, channels_per_batch, check_fits_analysis, find_sidecar,
                          open_recording)
from ..io.npy_stream import NpyRowWriter, read_rows
from ..fingerprints import fingerprint, recording_inputs, stale_reason
from ..params import PreprocessingParams, SpectrogramParams
from ..preprocessing import (ReferencePlan, line_noise_description, reference_plan, remove_line_noise,
                             resample_signal, resampling_description)
from ..preprocessing.batched import preprocessed_batches
from ..preprocessing.line_noise import MAX_NOTCHES, notch_count
from ..preprocessing.resampling import resampled_length
from ..progress import progress
from ..threads import limit_threads
from ..transforms.spectrogram import SpectrogramFrontEnd, spectrogram_front_end
from .embeddings import ModelSource, write_embeddings
from .outcomes import RecordingOutcome, per_recording
from .scratch import remove_abandoned_scratch, scratch_dir

LOGGER = logging.getLogger("bids_brainbert")


def subject_log_dir(output_dir: Path, subject: str, run_id: str) -> Path:
    return deriv.ensure_inside(output_dir, output_dir / f"sub-{subject}" / "log" / run_id)


def process_recording(recording: Recording, config: RunConfig, run_id: str,
                      model_source: ModelSource | None = None) -> RecordingOutcome:
    """Write the spectrogram (and, given a model, embedding) derivatives of one recording; never raises for a
    bad recording."""
    with working():
        return _process_recording(recording, config, run_id, model_source)


def _process_recording(recording: Recording, config: RunConfig, run_id: str,
                       model_source: ModelSource | None) -> RecordingOutcome:
    handler = _attach_subject_log(config, recording.subject, run_id)
    try:
        return per_recording(
            recording, config.output_dir, config.work_dir, lambda: _process_and_embed(recording, config, model_source),
            discard=lambda: _discard_incomplete(spectrogram_paths_for(config, recording), config.output_dir))
    finally:
        LOGGER.removeHandler(handler)
        handler.close()


def _process_and_embed(recording: Recording, config: RunConfig, model_source: ModelSource | None
                       ) -> RecordingOutcome:
    outcome = _process(recording, config)
    if model_source is not None and outcome.status != "failed":
        data_path = spectrogram_paths_for(config, recording)["data"]
        outcome.outputs += [str(p) for p in write_embeddings(recording, data_path, config, model_source)]
    return outcome


def _discard_incomplete(paths: dict[str, Path], output_dir: Path) -> None:
    """A failed recording leaves no half derivative (say the data renamed into place but the disk filled up before
    its sidecar); a complete one (hash matching) from an earlier run is kept. Nothing is deleted through a folder
    that leads out of the output directory (the same containment as writing)."""
    inside = {name: path for name, path in paths.items() if deriv.is_inside(output_dir, path)}
    if len(inside) == len(paths) and not deriv.is_complete(paths):
        for path in inside.values():
            path.unlink(missing_ok=True)


class _SubjectLogHandler(logging.FileHandler):
    """A log line that cannot be written (disk full) is dropped silently: stderr has it, and the failure itself is
    reported there in one line rather than as logging's traceback."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _attach_subject_log(config: RunConfig, subject: str, run_id: str) -> logging.Handler:
    if LOGGER.level == logging.NOTSET or LOGGER.level > logging.INFO:  # worker processes start unconfigured
        LOGGER.setLevel(logging.DEBUG if config.verbose else logging.INFO)
    log_dir = subject_log_dir(config.output_dir, subject, run_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = _SubjectLogHandler(log_dir / "bids-brainbert.log", encoding="utf-8")
    handler.setFormatter(OneLineFormatter("%(asctime)s | %(levelname)s | %(message)s"))
    LOGGER.addHandler(handler)
    return handler


def _process(recording: Recording, config: RunConfig) -> RecordingOutcome:
    paths = {k: deriv.ensure_inside(config.output_dir, p)
             for k, p in deriv.spectrogram_paths(config.output_dir, recording, config.spectrogram).items()}
    check_name_lengths(recording, config.output_dir, config.spectrogram, config.model_label, paths["data"].parent)
    for stale in deriv.remove_stale_temporaries(paths["data"].parent, recording.stem_entities):
        LOGGER.info("%s: removed %s left by an interrupted run", recording.relative_path, stale.name)
    preprocessing, spectrogram = config.preprocessing_params(), config.spectrogram_params()
    expected = None
    if not config.overwrite and deriv.is_complete(paths):
        expected = spectrogram_fingerprint(recording, preprocessing, spectrogram)
        reason = stale_reason(deriv.read_json(paths["sidecar"]).get("Fingerprint"), expected)
        if reason is None:
            LOGGER.info("%s: complete derivative found, skipped (use --overwrite to recompute)",
                        recording.relative_path)
            return RecordingOutcome(recording.relative_path, "skipped", "already complete",
                                    [str(p) for p in paths.values()])
        LOGGER.info("%s: recomputing %s: %s", recording.relative_path, paths["data"].name, reason)
    LOGGER.info("%s: loading", recording.relative_path)
    opened = open_recording(recording, include_dbs=preprocessing.include_dbs)
    check_fits_analysis(recording, opened, spectrogram, preprocessing.sampling_rate, config.embedding_window_s)
    for name, reason in opened.dropped.items():
        LOGGER.info("%s: channel %s left out: %s", recording.relative_path, name, reason)
    expected = expected or spectrogram_fingerprint(recording, preprocessing, spectrogram)   # files the loader read
    steps = preprocessing_steps(opened, preprocessing, recording)
    shape = (len(steps.plan.derivations), resampled_length(opened.n_samples, opened.sfreq, steps.target))
    front_end = spectrogram_front_end(spectrogram, steps.sfreq, str(recording.path))
    n_frames = front_end.n_frames(shape[1])
    if n_frames <= 2 * front_end.edge_frames:
        LOGGER.warning("%s: recording (%.1f s) is shorter than the transform's edge zone; every frame is affected "
                       "by zero padding", recording.relative_path, shape[1] / steps.sfreq)
    with scratch_dir(config.work_dir, recording.stem_entities) as scratch:
        staged = stage_signal(scratch / "signal.npy", shape, opened, steps)
        data_hash = write_spectrogram(paths["data"], staged, front_end, spectrogram.channel_batch_size,
                                      desc=recording.stem_entities)
    channels = steps.channels
    deriv.atomic_write_tsv(paths["channels"], channels)
    deriv.atomic_write_json(paths["channels_sidecar"], channel_columns_description(channels))
    sidecar = spectrogram_sidecar(recording, config, front_end, steps.description, shape, n_frames, data_hash,
                                  channels_file=paths["channels"].name)
    sidecar["Fingerprint"] = expected
    if opened.coordsystem is not None:
        sidecar["CoordinateSystem"] = opened.coordsystem
    deriv.atomic_write_json(paths["sidecar"], sidecar)  # written last: its hash marks the derivative complete
    LOGGER.info("%s: wrote %s (%d channels x %d frames x %d frequencies)", recording.relative_path,
                paths["data"].name, shape[0], n_frames, len(front_end.freqs_hz))
    return RecordingOutcome(recording.relative_path, "written", "", [str(p) for p in paths.values()])


def check_name_lengths(recording: Recording, output_dir: Path, spectrogram_kind: str, model_label: str,
                       folder: Path) -> None:
    """Derivative names add a desc entity and a suffix to the recording's, and a temporary name adds more: a name
    the file system cannot hold is refused up front, naming the input (not a scratch or temporary file)."""
    longest_names = [names.spectrogram_files(recording.stem_entities, spectrogram_kind)["sidecar"],
                     names.embedding_files(recording.stem_entities, model_label)["events_sidecar"]]
    longest = max(len(os.fsencode(name)) for name in longest_names) + len(f".{deriv.TMP_MARK}") + 8  # mkstemp's suffix
    try:
        limit = os.pathconf(folder if folder.exists() else output_dir, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if longest > limit:
        raise RecordingError(f"{recording.path}: file name too long for its derivatives ({longest} bytes with the "
                             f"derivative suffixes; the output file system allows {limit}): shorten its labels")


@dataclass
class PreprocessingSteps:
    """What preprocessing does to one recording, decided before any signal is read."""

    plan: ReferencePlan            # re-referencing: which output channel comes from which inputs
    line_freq: float | None        # Hz notched (with harmonics); None: no notch
    notch: dict                    # the other arguments of remove_line_noise
    target: float | None           # resampling target in Hz (None: the recording's own rate)
    sfreq: float                   # Hz of the preprocessed signal
    description: dict              # for the sidecar's Preprocessing
    channels: pd.DataFrame         # the derivative's channel table


def preprocessing_steps(info: LoadedRecording | OpenedRecording, params: PreprocessingParams,
                        recording: Recording) -> PreprocessingSteps:
    """Notch, re-referencing and resampling settings of a recording; RecordingError when no channel is left."""
    description: dict = {"InputSamplingFrequency": info.sfreq}
    notch = {"harmonics_up_to_hz": params.line_noise_max_hz, "quality": params.line_noise_quality}
    line_freq = info.line_freq if params.line_noise and info.line_freq else None
    if line_freq and notch_count(info.sfreq, line_freq, harmonics_up_to_hz=params.line_noise_max_hz) > MAX_NOTCHES:
        raise RecordingError(f"{find_sidecar(recording, 'ieeg.json') or recording.path}: PowerLineFrequency "
                             f"{line_freq:g} Hz would need more than {MAX_NOTCHES} notches up to "
                             f"{params.line_noise_max_hz:g} Hz (mains is 50 or 60 Hz; or use --no-line-noise)")
    if line_freq:
        description["LineNoise"] = line_noise_description(info.sfreq, line_freq, **notch)
    else:
        reason = "disabled (--no-line-noise)" if not params.line_noise else "no PowerLineFrequency in *_ieeg.json"
        description["LineNoise"] = {"applied": False, "reason": reason}
        if params.line_noise:
            LOGGER.warning("%s: line noise not removed: %s", recording.relative_path, reason)
    plan = reference_plan(info.ch_names, info.ch_types, params.reference, groups=info.groups or None,
                          min_neighbours=params.laplacian_min_neighbours, positions=contact_positions(info))
    for name, reason in plan.dropped.items():
        LOGGER.info("%s: channel %s left out by re-referencing: %s", recording.relative_path, name, reason)
    if not plan.derivations:
        raise RecordingError(f"{recording.path}: no channel left after '{params.reference}' re-referencing "
                             f"(try --reference car or --laplacian-min-neighbours 1)")
    description["Reference"] = plan.summary
    description["ChannelsLeftOut"] = {**info.dropped, **plan.dropped}   # name -> reason
    target = params.target_rate
    description["Resampling"] = resampling_description(info.sfreq, target)
    sfreq = description["Resampling"]["sfreq_hz"]   # the rate resample_signal will reach
    return PreprocessingSteps(plan, line_freq, notch, target, sfreq, description, channel_table(info, plan))


def stage_signal(path: Path, shape: tuple[int, int], opened: OpenedRecording, steps: PreprocessingSteps) -> Path:
    """Preprocess ``opened`` a channel batch at a time into a float32 (channel, sample) .npy at ``path``, from
    which the transform then reads its own batches: memory holds a batch, never the recording."""
    batches = preprocessed_batches(opened.read, steps.plan, opened.sfreq, line_freq=steps.line_freq,
                                   notch=steps.notch, target_sfreq=steps.target,
                                   batch_channels=channels_per_batch(opened.n_samples))
    with NpyRowWriter(path, shape, np.float32) as staged:
        for _, rows in batches:
            staged.write(rows)
    return path


def spectrogram_fingerprint(recording: Recording, preprocessing: PreprocessingParams,
                            spectrogram: SpectrogramParams) -> dict:
    """What a recording's spectrogram derivative is computed from: the preprocessing and front-end settings
    and the raw files."""
    return fingerprint("spectrogram", {"preprocessing": preprocessing.shaping(), "spectrogram": spectrogram.shaping()},
                       recording_inputs(recording))


def preprocess(loaded: LoadedRecording, params: PreprocessingParams, recording: Recording):
    """Notch, re-reference and resample a recording in memory; returns (signal, sfreq, channel table,
    description for the sidecar). The participant level computes the same numbers a channel batch at a time."""
    steps = preprocessing_steps(loaded, params, recording)
    data = loaded.data
    if steps.line_freq:
        data = remove_line_noise(data, loaded.sfreq, steps.line_freq, **steps.notch)
    referenced = steps.plan.apply(data)
    signal, sfreq = resample_signal(referenced.data, loaded.sfreq, steps.target)
    return signal, sfreq, steps.channels, steps.description


def contact_positions(info: LoadedRecording | OpenedRecording) -> dict[str, tuple[float, float, float]]:
    """Channel name -> (x, y, z) from electrodes.tsv, for the channels with three finite coordinates."""
    electrodes = info.electrodes
    if electrodes is None or not {"x", "y", "z"} <= set(electrodes.columns):
        return {}
    xyz = electrodes[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce")
    xyz = xyz[~xyz.index.duplicated(keep=False)]          # an ambiguous name has no position
    return {name: tuple(float(v) for v in xyz.loc[name]) for name in info.ch_names
            if name in xyz.index and np.isfinite(xyz.loc[name].to_numpy(float)).all()}


CHANNEL_COLUMNS = {
    "sources": "Input channels this row was computed from (re-referencing), comma separated",
    "neighbours": "Laplacian only: the neighbouring contacts whose mean was subtracted, comma separated (n/a "
                  "for other references)",
    "neighbour_rule": "Laplacian only: how the neighbours were chosen: 'coordinates' (ECoG grids and strips "
                      "with electrodes.tsv positions: contacts within 1.25 x the group's contact spacing) or "
                      "'label numbers' (contacts numbered +-1 on the same shaft)",
    "x": "Mean x coordinate of the source contacts (electrodes.tsv units, see the sidecar's CoordinateSystem)",
    "y": "Mean y coordinate of the source contacts",
    "z": "Mean z coordinate of the source contacts",
    "group": "Electrode group (shaft, grid or strip) from electrodes.tsv",
    "region": "Brain region from electrodes.tsv",
    "hemisphere": "Hemisphere from electrodes.tsv",
}


def channel_table(loaded: LoadedRecording | OpenedRecording, referenced) -> pd.DataFrame:
    """Row order of the derivative's channel axis as a BIDS iEEG channels table, with electrode coordinates,
    group and region carried over from electrodes.tsv."""
    rows = []
    neighbours = getattr(referenced, "neighbours", None) or [("", [])] * len(referenced.ch_names)
    laplacian = any(rule for rule, _ in neighbours)
    for name, ch_type, sources, (rule, near) in zip(referenced.ch_names, referenced.ch_types, referenced.sources,
                                                    neighbours):
        row = {"name": name, "type": ch_type.upper(), "units": "V", "low_cutoff": "n/a", "high_cutoff": "n/a",
               "status": "good", "sources": ",".join(sources)}
        if laplacian:
            row.update(neighbours=",".join(near) if rule else "n/a", neighbour_rule=rule or "n/a")
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


def write_spectrogram(path: Path, staged: Path, front_end: SpectrogramFrontEnd, batch_size: int,
                      desc: str = "") -> str:
    """Transform channel batches of the staged (channel, sample) signal and write them to a (channel, time,
    frequency) float32 .npy under a temporary name, renamed when complete; returns its sha256.

    Batches are read through a memory map of just their rows and written with plain writes (see
    :mod:`bids_brainbert.io.npy_stream`), so resident memory holds one batch."""
    n_channels, n_samples = np.load(staged, mmap_mode="r").shape
    shape = (n_channels, front_end.n_frames(n_samples), len(front_end.freqs_hz))
    with deriv.atomic_path(path) as tmp:
        with NpyRowWriter(tmp, shape, np.float32) as out:
            starts = range(0, n_channels, batch_size)
            for start in tqdm(starts, desc=desc or path.name, unit="batch", leave=False, disable=None):
                batch = read_rows(staged, start, start + batch_size)  # the transform reads it chunk by chunk
                spectrogram = front_end.transform(batch)              # (channel, frequency, time)
                del batch
                for channel in spectrogram:
                    out.write(channel.T[None])
                del spectrogram
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
    install_worker_handlers()   # a worker interrupted by SIGTERM removes its temporary files like on Ctrl-C
    limit_threads(1)   # one thread per worker: --nprocs recordings in parallel must not oversubscribe the cores
    seed_everything(seed)


def run_participant_level(config: RunConfig, recordings: list[Recording], run_id: str,
                          model_source: ModelSource | None = None) -> list[RecordingOutcome]:
    """Process recordings, ``config.nprocs`` at a time; outcomes in input order."""
    remove_abandoned_scratch(config.work_dir)
    if config.nprocs <= 1 or len(recordings) == 1:
        return [process_recording(r, config, run_id, model_source)
                for r in progress(recordings, desc="recordings", unit="recordings")]
    outcomes = []
    with ProcessPoolExecutor(max_workers=config.nprocs, mp_context=get_context("spawn"),
                             initializer=_worker_init, initargs=(config.random_seed,)) as pool:
        futures = [pool.submit(process_recording, r, config, run_id, model_source) for r in recordings]
        try:
            # the bar first: zip stops at the shorter input, and the bar counts an item when the next is asked for
            for future, recording in zip(progress(futures, desc="recordings", unit="recordings"), recordings):
                try:
                    outcomes.append(future.result())
                except BrokenProcessPool:
                    outcomes.append(_killed_worker_outcome(recording, config))
        except KeyboardInterrupt:
            _interrupt_workers(pool, futures)
            raise
    if any(o.message.endswith(KILLED_HINT) for o in outcomes):
        # the pool is down: every worker is gone, so what they were writing can be removed now
        remove_abandoned_scratch(config.work_dir)
        for recording, outcome in zip(recordings, outcomes):
            if outcome.status == "failed":
                paths = spectrogram_paths_for(config, recording)
                if deriv.is_inside(config.output_dir, paths["data"]):
                    deriv.remove_stale_temporaries(paths["data"].parent, recording.stem_entities)
                _discard_incomplete(paths, config.output_dir)
    return outcomes


def _interrupt_workers(pool: ProcessPoolExecutor, futures) -> None:
    """Interrupted (Ctrl-C, SIGTERM): recordings not started are dropped and the workers are interrupted too,
    so that they remove their temporary files (a signal sent to this process alone would otherwise leave them
    running through the whole queue)."""
    for future in futures:
        future.cancel()
    for process in list(getattr(pool, "_processes", {}).values()):   # no public handle on the workers
        if process.is_alive():
            try:
                os.kill(process.pid, signal.SIGTERM)
            except OSError:
                pass


KILLED_HINT = "(out of memory? try fewer --nprocs or a smaller --channel-batch-size)"


def _killed_worker_outcome(recording: Recording, config: RunConfig) -> RecordingOutcome:
    """A worker killed by the system (the out-of-memory killer, kill -9) breaks the whole pool: every recording
    not finished by then is reported, none with a traceback."""
    message = (f"{recording.path}: not finished: a worker process was killed by the operating system "
               f"{KILLED_HINT}")
    LOGGER.error("%s", message)
    return RecordingOutcome(recording.relative_path, "failed", message)


def spectrogram_paths_for(config: RunConfig, recording: Recording) -> dict[str, Path]:
    return deriv.spectrogram_paths(config.output_dir, recording, config.spectrogram)
