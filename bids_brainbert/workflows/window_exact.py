"""The embedding workflow's hook for window-exact input (``--embedding-windowing``, see
:mod:`bids_brainbert.windowing`): the recording is preprocessed again into a scratch file, exactly as for its
spectrogram derivative, and every window is transformed from that signal alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.discovery import Recording
from ..params import EmbeddingSettings, PreprocessingParams, SpectrogramParams
from ..errors import RecordingError
from ..io.loading import open_recording
from ..preprocessing.resampling import resampled_length
from ..transforms.spectrogram import spectrogram_front_end
from ..windowing import WindowExactEmbeddings, resolve_windowing, window_exact_embeddings
from .scratch import scratch_dir


def window_exact_for(recording: Recording, preprocessing: PreprocessingParams, spectrogram: SpectrogramParams,
                     settings: EmbeddingSettings, work_dir: Path | None, published: bool, n_channels: int, model,
                     window_params, event_params, events: pd.DataFrame | None, device
                     ) -> WindowExactEmbeddings | None:
    """Window-exact embeddings of one recording, or None when its windows come from the spectrogram derivative
    (``n_channels``: the derivative's, which the preprocessed signal must match row for row)."""
    if resolve_windowing(settings.windowing, published) != "brainbert":
        return None
    from .participant import preprocessing_steps, stage_signal  # participant imports the embedding workflow

    opened = open_recording(recording, include_dbs=preprocessing.include_dbs)
    steps = preprocessing_steps(opened, preprocessing, recording)
    shape = (len(steps.plan.derivations), resampled_length(opened.n_samples, opened.sfreq, steps.target))
    if shape[0] != n_channels:
        raise RecordingError(f"{recording.path}: preprocessing gives {shape[0]} channels but its spectrogram "
                             f"derivative has {n_channels}: rerun with --overwrite")
    front_end = spectrogram_front_end(spectrogram, steps.sfreq, str(recording.path))
    onsets = None
    if events is not None:
        # the readout window is centred on onset + offset, as for windows cut from the spectrogram
        onsets = pd.to_numeric(events["onset"], errors="coerce").to_numpy(dtype=float) + settings.readout_offset_s
        onsets = np.nan_to_num(onsets, nan=-1e9)
    with scratch_dir(work_dir, recording.stem_entities) as scratch:
        staged = stage_signal(scratch / "signal.npy", shape, opened, steps)
        return window_exact_embeddings(np.load(staged, mmap_mode="r"), front_end, model, window_params,
                                       event_params, onsets, device)
