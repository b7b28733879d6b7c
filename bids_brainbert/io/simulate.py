"""A simulated BIDS iEEG dataset with known ground truth: the bundled example and the test fixture.

``write_demo_dataset(root)`` writes an auditory "listening" experiment recorded with sEEG depth shafts (and,
for one subject, an ECoG grid) through :func:`mne_bids.write_raw_bids`, so the files look like those of a real
mne-bids conversion:

* subjects ``01``, ``02``, ``03`` (more if asked; they cycle through the same three recording set-ups), all in
  session ``01``; subject ``01`` has two runs (``run-01``, ``run-02``), the others one run without a run entity;
* sub-01: 2048 Hz, EDF, 60 Hz mains, shafts ``LA1..8``, ``RH1..6``, ``A'1..6`` and an ``ECG`` channel;
  sub-02: 1000 Hz, BrainVision, 50 Hz mains, shafts ``LA``, ``A'``, a 4 x 4 ECoG grid ``G1..G16`` and a ``MIC``
  (misc) channel with the stimulus sound envelope; sub-03: 512 Hz, EDF, 60 Hz mains, the three shafts and ``ECG``;
* the signal, in volts: 1/f^beta background (beta 1.2-2.0, tens of µV, a theta/alpha peak on some contacts, a
  white amplifier floor, correlated between neighbouring contacts of a shaft or grid), mains interference
  with harmonics, and on a few "responsive" contacts in auditory cortex a 70-150 Hz high-gamma burst after every
  ``speech`` onset only (``nonspeech`` events get nothing);
* one bad channel per subject (``status=bad`` in channels.tsv), really bad: huge noise or a flat line;
* ``*_electrodes.tsv`` in ACPC space (metres) with ``group``, ``hemisphere``, ``type`` and an extra ``region``
  column (described in ``*_electrodes.json``), ``participants.tsv`` with age/sex/hand, a README, and
  ``code/demo_truth.json`` holding :class:`DemoTruth`.

The dataset passes the official BIDS validator without errors. Everything is drawn from ``seed``: the same seed
gives byte-identical files. ``small=True`` writes 30 s runs (the default is 120 s) for quick tests.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import mne
import mne_bids
import numpy as np
import pandas as pd

from .. import __version__

__all__ = ["DemoTruth", "write_demo_dataset", "TASK", "SESSION", "CONDITIONS", "EVENT_ID"]

LOGGER = logging.getLogger(__name__)

TASK = "listening"
SESSION = "01"
CONDITIONS = ("speech", "nonspeech")
EVENT_ID = {"speech": 1, "nonspeech": 2}
RESPONSE_CONDITION = "speech"
HIGH_GAMMA_BAND = (70.0, 150.0)        # Hz, the planted response
DEFAULT_DURATION_S = 120.0
SMALL_DURATION_S = 30.0
MIN_DURATION_S = 10.0
_SOA_S = 2.0                           # minimum onset-to-onset interval
_EDGE_S = 1.0                          # no onset in the first/last second


@dataclass
class DemoTruth:
    """What was planted in the simulated dataset, so that tests can check it is recovered."""

    responsive: dict[str, list[str]]       # subject label (no "sub-") -> channels with a high-gamma response
    condition: str                         # trial_type whose events carry the response
    bad_channels: dict[str, list[str]]     # subject label -> channels marked status=bad
    band_hz: tuple[float, float] = HIGH_GAMMA_BAND
    sampling_rates: dict[str, float] | None = None   # subject label -> Hz
    formats: dict[str, str] | None = None            # subject label -> "EDF" | "BrainVision"
    line_freqs: dict[str, float] | None = None       # subject label -> PowerLineFrequency (Hz)
    runs: dict[str, list[str | None]] | None = None  # subject label -> run labels (None: no run entity)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["band_hz"] = list(self.band_hz)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "DemoTruth":
        data = dict(data)
        if "band_hz" in data:
            data["band_hz"] = tuple(data["band_hz"])
        return cls(**data)


# ------------------------------------------------------------------------------------------------ layout

@dataclass(frozen=True)
class _Shaft:
    """A depth electrode: contacts 1..n from the deepest one outwards, or an ECoG grid (rows x cols)."""

    name: str
    ch_type: str                    # "seeg" | "ecog"
    hemisphere: str                 # "L" | "R"
    start: tuple[float, float, float]   # deepest contact (seeg) or first contact (grid), ACPC metres
    direction: tuple[float, float, float]
    regions: tuple[str, ...]        # one per contact (seeg) or per row (grid)
    spacing: float = 0.005          # metres between contacts
    n_cols: int = 0                 # grids only

    @property
    def n_contacts(self) -> int:
        return len(self.regions) * self.n_cols if self.n_cols else len(self.regions)


_SHAFTS = {
    "LA": _Shaft("LA", "seeg", "L", (-0.021, -0.005, -0.019), (-1.0, 0.0, 0.45),
                 ("amygdala",) * 3 + ("white matter",) * 2 + ("middle temporal gyrus",)
                 + ("superior temporal gyrus",) * 2),
    "RH": _Shaft("RH", "seeg", "R", (0.027, -0.022, -0.013), (1.0, -0.05, 0.25),
                 ("hippocampus",) * 3 + ("white matter",) + ("middle temporal gyrus",) * 2),
    "A'": _Shaft("A'", "seeg", "L", (-0.037, -0.024, 0.007), (-1.0, 0.1, 0.15),
                 ("transverse temporal gyrus",) * 3 + ("white matter",) + ("superior temporal gyrus",) * 2),
    # 4 x 4 grid over the left lateral temporal lobe, 10 mm pitch; rows go down, columns go back
    "G": _Shaft("G", "ecog", "L", (-0.064, -0.005, 0.016), (0.0, -1.0, 0.0),
                ("supramarginal gyrus", "superior temporal gyrus", "superior temporal gyrus",
                 "middle temporal gyrus"), spacing=0.010, n_cols=4),
}
_CONTACT_SIZE_MM2 = {"seeg": 5.0, "ecog": 4.2}
_THETA_REGIONS = {"hippocampus", "amygdala"}


@dataclass(frozen=True)
class _SubjectPlan:
    label: str
    sfreq: float
    fmt: str                        # "EDF" | "BrainVision"
    line_freq: float
    n_runs: int
    shafts: tuple[str, ...]
    extra: tuple[str, str]          # (name, type) of the non-iEEG channel
    responsive: tuple[str, ...]
    bad: tuple[str, str]            # (name, "noise" | "flat")
    birthday: date
    sex: int                        # mne: 1 male, 2 female
    hand: int                       # mne: 1 right, 2 left, 3 ambidextrous
    meas_date: datetime


_PLANS = (
    _SubjectPlan("01", 2048.0, "EDF", 60.0, 2, ("LA", "RH", "A'"), ("ECG", "ecg"), ("A'2", "A'3", "LA7"),
                 ("RH3", "noise"), date(1987, 6, 2), 2, 1, datetime(2021, 3, 15, 10, 5, tzinfo=timezone.utc)),
    _SubjectPlan("02", 1000.0, "BrainVision", 50.0, 1, ("LA", "A'", "G"), ("MIC", "misc"), ("G6", "G10", "A'3"),
                 ("G12", "flat"), date(1994, 11, 20), 1, 2, datetime(2021, 9, 1, 14, 30, tzinfo=timezone.utc)),
    _SubjectPlan("03", 512.0, "EDF", 60.0, 1, ("LA", "RH", "A'"), ("ECG", "ecg"), ("LA7", "A'2", "A'5"),
                 ("RH4", "noise"), date(1979, 2, 14), 1, 1, datetime(2022, 1, 24, 9, 0, tzinfo=timezone.utc)),
)


def _subject_plan(index: int) -> _SubjectPlan:
    """Subject ``index`` (0-based): the three set-ups above, repeated with new labels/dates beyond three."""
    base = _PLANS[index % len(_PLANS)]
    if index < len(_PLANS):
        return base
    cycle = index // len(_PLANS)
    return replace(base, label=f"{index + 1:02d}", n_runs=1,
                   birthday=base.birthday.replace(year=base.birthday.year + 2 * cycle),
                   meas_date=base.meas_date + timedelta(days=45 * cycle))


@dataclass(frozen=True)
class _Contact:
    name: str
    ch_type: str
    group: str
    hemisphere: str
    region: str
    pos: np.ndarray                 # (3,) metres, ACPC
    index_in_group: int


def _contacts(plan: _SubjectPlan, rng: np.random.Generator) -> list[_Contact]:
    """Contacts of every shaft/grid of a subject, each electrode shifted a little (implantations differ)."""
    out: list[_Contact] = []
    for key in plan.shafts:
        shaft = _SHAFTS[key]
        shift = rng.normal(0.0, 0.0015, 3)
        direction = np.asarray(shaft.direction, float)
        direction /= np.linalg.norm(direction)
        start = np.asarray(shaft.start) + shift
        if shaft.n_cols:                       # grid: rows downwards (z), columns along `direction`
            for row, region in enumerate(shaft.regions):
                for col in range(shaft.n_cols):
                    k = row * shaft.n_cols + col
                    pos = start + col * shaft.spacing * direction + np.array([0.0, 0.0, -row * shaft.spacing])
                    pos[0] -= 0.0015 * ((col - 1.5) ** 2 + (row - 1.5) ** 2) / 4.5   # follow the convex surface
                    out.append(_Contact(f"{shaft.name}{k + 1}", shaft.ch_type, shaft.name, shaft.hemisphere,
                                        region, np.round(pos, 5), k))
        else:
            for k, region in enumerate(shaft.regions):
                pos = start + k * shaft.spacing * direction
                out.append(_Contact(f"{shaft.name}{k + 1}", shaft.ch_type, shaft.name, shaft.hemisphere,
                                    region, np.round(pos, 5), k))
    return out


# ------------------------------------------------------------------------------------------------ events

def _events(duration_s: float, rng: np.random.Generator) -> pd.DataFrame:
    """Balanced, shuffled speech/nonspeech trials, onsets >= 2 s apart, 1 s clear of both recording ends."""
    span = duration_s - 2 * _EDGE_S
    n = int(np.floor(span / _SOA_S + 1e-9)) + 1
    n -= n % 2
    slack = span - (n - 1) * _SOA_S                      # spread as jitter over the start and the gaps
    extra = rng.dirichlet(np.ones(n + 1)) * slack
    onsets = _EDGE_S + extra[0] + np.arange(n) * _SOA_S + np.concatenate([[0.0], np.cumsum(extra[1:n])])
    labels = np.array([CONDITIONS[0]] * (n // 2) + [CONDITIONS[1]] * (n // 2))
    labels = labels[rng.permutation(n)]
    durations = rng.uniform(0.5, 0.9, n)                  # stimulus (sound) lengths
    return pd.DataFrame({"onset": np.round(onsets, 3), "duration": np.round(durations, 3), "trial_type": labels})


# ------------------------------------------------------------------------------------------------ signals

def _band_noise(rng: np.random.Generator, n: int, sfreq: float, band: tuple[float, float], count: int) -> np.ndarray:
    """``count`` independent unit-RMS Gaussian noises band-limited to ``band`` (Hz)."""
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    mask = (freqs >= band[0]) & (freqs <= band[1])
    spec = np.zeros((count, freqs.size), complex)
    k = int(mask.sum())
    spec[:, mask] = rng.standard_normal((count, k)) + 1j * rng.standard_normal((count, k))
    x = np.fft.irfft(spec, n=n, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def _band_rms(x: np.ndarray, sfreq: float, band: tuple[float, float]) -> np.ndarray:
    """RMS of each row of ``x`` restricted to ``band`` (Hz), via Parseval."""
    n = x.shape[-1]
    spec = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    mask = (freqs >= band[0]) & (freqs <= band[1])
    return np.sqrt(2.0 * np.sum(np.abs(spec[..., mask]) ** 2, axis=-1)) / n


def _background(contacts: list[_Contact], n: int, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Aperiodic 1/f^beta activity plus a white floor (and theta/alpha where fitting), shaft-correlated."""
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    n_ch = len(contacts)
    betas = rng.uniform(1.2, 2.0, n_ch)
    amp = (freqs[None, :] ** 2 + 0.5 ** 2) ** (-betas[:, None] / 4.0)          # knee at 0.5 Hz
    floor = (200.0 ** 2 + 0.5 ** 2) ** (-betas / 4.0) * rng.uniform(0.6, 1.0, n_ch)
    amp += floor[:, None]
    for i, contact in enumerate(contacts):
        if contact.region in _THETA_REGIONS or contact.ch_type == "ecog" or rng.random() < 0.3:
            peak = rng.uniform(5.0, 7.5) if contact.region in _THETA_REGIONS else rng.uniform(8.5, 11.0)
            height = rng.uniform(1.5, 3.0) * (peak ** 2 + 0.25) ** (-betas[i] / 4.0)
            amp[i] += height * np.exp(-0.5 * ((freqs - peak) / 1.2) ** 2)
    amp[:, 0] = 0.0                                                              # no DC offset
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    x = np.fft.irfft(spec, n=n, axis=-1)
    # neighbouring contacts share activity: mix within each shaft/grid with weights rho^distance
    positions = np.array([c.pos for c in contacts])
    groups = np.array([c.group for c in contacts])
    mixed = np.empty_like(x)
    for group in dict.fromkeys(groups):
        idx = np.flatnonzero(groups == group)
        dist = np.linalg.norm(positions[idx, None, :] - positions[None, idx, :], axis=-1)
        weights = 0.45 ** (dist / 0.005)
        weights /= np.sqrt((weights ** 2).sum(axis=1, keepdims=True))
        mixed[idx] = weights @ x[idx]
    target = rng.uniform(20e-6, 45e-6, n_ch)                                     # RMS, volts
    return mixed * (target / mixed.std(axis=-1))[:, None]


def _line_noise(n_ch: int, n: int, sfreq: float, line_freq: float, rng: np.random.Generator) -> np.ndarray:
    """Mains interference at ``line_freq`` and its harmonics below 90 % of Nyquist, channel-specific gains."""
    t = np.arange(n) / sfreq
    base = rng.uniform(4e-6, 12e-6)
    out = np.zeros((n_ch, n))
    for harmonic, rel in zip((1, 2, 3, 4), (1.0, 0.3, 0.15, 0.06)):
        f = harmonic * line_freq
        if f >= 0.9 * sfreq / 2:
            break
        phase = rng.uniform(0, 2 * np.pi)
        sin, cos = np.sin(2 * np.pi * f * t + phase), np.cos(2 * np.pi * f * t + phase)
        gains = base * rel * rng.uniform(0.5, 1.5, n_ch)
        shifts = rng.normal(0.0, 0.2, n_ch)
        out += np.outer(gains * np.cos(shifts), sin) + np.outer(gains * np.sin(shifts), cos)
    return out


def _high_gamma(background: np.ndarray, events: pd.DataFrame, n: int, sfreq: float,
                rng: np.random.Generator) -> np.ndarray:
    """70-150 Hz bursts (0.3-0.8 s, ~60-110 ms after onset) on the given rows, after speech onsets only."""
    count = background.shape[0]
    carrier = _band_noise(rng, n, sfreq, HIGH_GAMMA_BAND, count)
    # band power rises ~7-15 fold during a burst: amplitude 2.6-3.8 x the background's own 70-150 Hz RMS
    scale = _band_rms(background, sfreq, HIGH_GAMMA_BAND) * rng.uniform(2.6, 3.8, count)
    envelope = np.zeros((count, n))
    for onset, duration in events.loc[events["trial_type"] == RESPONSE_CONDITION, ["onset", "duration"]].itertuples(
            index=False):
        latency = rng.uniform(0.06, 0.11)
        length = float(np.clip(duration * rng.uniform(0.75, 0.95), 0.3, 0.8))
        start = int(round((onset + latency) * sfreq))
        m = min(int(round(length * sfreq)), n - start)
        if m <= 0:
            continue
        ramp = np.sin(np.linspace(0, np.pi, m)) ** 0.5            # smooth rise and fall, flat-ish top
        envelope[:, start:start + m] += rng.uniform(0.75, 1.25, (count, 1)) * ramp
    return carrier * envelope * scale[:, None]


def _ecg(n: int, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """A heartbeat trace (~70 bpm, 1 mV R waves) with baseline wander, in volts."""
    t = np.arange(n) / sfreq
    beats = np.cumsum(rng.normal(0.86, 0.04, int(n / sfreq / 0.7) + 2)) - rng.uniform(0, 0.8)
    beats = beats[(beats > 0) & (beats < n / sfreq)]
    tt = np.arange(int(-0.3 * sfreq), int(0.5 * sfreq)) / sfreq
    # P, Q, R, S and T waves: (amplitude V, centre s, width s)
    waves = ((0.1e-3, -0.18, 0.025), (-0.15e-3, -0.03, 0.008), (1.0e-3, 0.0, 0.010), (-0.2e-3, 0.03, 0.010),
             (0.25e-3, 0.25, 0.04))
    template = sum(a * np.exp(-0.5 * ((tt - c) / w) ** 2) for a, c, w in waves)
    x = np.zeros(n)
    for b in beats:
        start = int(round(b * sfreq)) + int(-0.3 * sfreq)
        lo, hi = max(start, 0), min(start + template.size, n)
        x[lo:hi] += template[lo - start:hi - start]
    x += 0.08e-3 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 8e-6, n)
    return x


def _sound_envelope(events: pd.DataFrame, n: int, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Microphone envelope in arbitrary units (peak ~1): syllabic (~4 Hz) modulation for speech, steady for
    other sounds, plus room noise."""
    x = np.abs(rng.normal(0, 0.02, n))
    for onset, duration, kind in events[["onset", "duration", "trial_type"]].itertuples(index=False):
        start, m = int(round(onset * sfreq)), int(round(duration * sfreq))
        m = min(m, n - start)
        tt = np.arange(m) / sfreq
        shape = np.sin(np.pi * tt / duration) ** 0.3
        if kind == RESPONSE_CONDITION:
            shape = shape * (0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(3.5, 5.0) * tt + rng.uniform(0, 6.3)))
        x[start:start + m] += rng.uniform(0.8, 1.2) * shape
    return x


def _bad_signal(kind: str, clean: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    n = clean.size
    if kind == "flat":                                    # disconnected contact
        return np.zeros(n)
    t = np.arange(n) / sfreq                              # broken contact: huge noise, drift and pops
    x = clean + rng.normal(0, 350e-6, n) + 400e-6 * np.sin(2 * np.pi * 0.07 * t + rng.uniform(0, 6.3))
    pops = rng.choice(n, size=max(1, int(n / sfreq / 8)), replace=False)
    x[pops] += rng.choice([-1, 1], pops.size) * 2.5e-3
    return x


def _simulate_run(plan: _SubjectPlan, contacts: list[_Contact], events: pd.DataFrame, n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(n_contacts + 1, n) volts: the iEEG contacts in order, then the extra (ECG/misc) channel."""
    sfreq = plan.sfreq
    names = [c.name for c in contacts]
    data = _background(contacts, n, sfreq, rng)
    rows = [names.index(name) for name in plan.responsive if name in names]
    if rows:
        data[rows] += _high_gamma(data[rows], events, n, sfreq, rng)
    data += _line_noise(len(contacts), n, sfreq, plan.line_freq, rng)
    bad_name, bad_kind = plan.bad
    if bad_name in names:
        row = names.index(bad_name)
        data[row] = _bad_signal(bad_kind, data[row], sfreq, rng)
    extra = _ecg(n, sfreq, rng) if plan.extra[1] == "ecg" else _sound_envelope(events, n, sfreq, rng)
    return np.vstack([data, extra[None, :]])


# ------------------------------------------------------------------------------------------------ writing

_ELECTRODES_JSON_EXTRA = {
    "group": {"Description": "Depth shaft or grid the contact belongs to."},
    "hemisphere": {"Description": "Hemisphere of the contact.", "Levels": {"L": "left", "R": "right"}},
    "type": {"Description": "Kind of electrode.", "Levels": {"depth": "sEEG depth shaft", "grid": "subdural grid"}},
    "region": {"Description": "Anatomical region of the contact (simulated labels, not from an atlas)."},
}

_EVENTS_JSON = {
    "trial_type": {
        "LongName": "Stimulus category",
        "Description": "Category of the sound played at onset.",
        "Levels": {"speech": "A spoken sentence fragment.",
                   "nonspeech": "An environmental (non-speech) sound of similar length and loudness."},
    },
    "value": {"Description": "Numeric event code.", "Levels": {str(v): k for k, v in EVENT_ID.items()}},
    "sample": {"Description": "Onset as a sample index of the recording (0-based)."},
}

_IEEG_JSON_EXTRA = {
    "TaskDescription": "Passive listening to short speech and non-speech sounds, one every 2 s or more.",
    "Instructions": "Listen to the sounds and keep your eyes open.",
    "InstitutionName": "Simulated (bids-brainbert example dataset)",
    "Manufacturer": "n/a",
    "iEEGReference": "Contacts referenced to a white-matter contact during recording (simulated).",
    "iEEGGround": "Scalp electrode (simulated).",
    "iEEGPlacementScheme": "Left temporal sEEG (amygdala, Heschl's gyrus) and right hippocampus; "
                           "sub-02 also has a left lateral temporal ECoG grid.",
    "iEEGElectrodeGroups": "LA, RH, A': depth shafts (5 mm pitch); G: 4 x 4 subdural grid (10 mm pitch).",
    "ElectrodeManufacturer": "n/a",
    "ElectricalStimulation": False,
    "HardwareFilters": "n/a",
}
_COORDSYSTEM_JSON_EXTRA = {"iEEGCoordinateProcessingDescription": "none"}

_README = """\
# bids-brainbert simulated iEEG example dataset

A small **simulated** intracranial EEG dataset in BIDS, written by
`bids_brainbert.io.simulate.write_demo_dataset` (seed {seed}) with MNE-BIDS. No human data is involved:
participants, dates and signals are synthetic.

## Task "listening"

Sounds are played one at a time, at least 2 s apart (events.tsv `trial_type`): `speech` and `nonspeech`,
in equal numbers and random order; `duration` is the sound's length.

## Recordings

| subject | sampling rate | format | mains | electrodes | runs |
|---|---|---|---|---|---|
{table}

The signals are 1/f background activity (tens of µV), mains interference with harmonics, a
theta/alpha rhythm on some contacts and, on a few contacts in auditory cortex, a 70-150 Hz (high-gamma)
burst after each `speech` onset and never after `nonspeech` ones. Each subject has one bad channel
(`status=bad` in channels.tsv; a flat line or large noise). Electrode coordinates are in ACPC space (metres);
`region` in electrodes.tsv is a simulated anatomical label.

The ground truth (which contacts respond, which are bad) is in `code/demo_truth.json`.
"""


def _quiet_write(raw: mne.io.BaseRaw, bids_path: mne_bids.BIDSPath, fmt: str) -> None:
    with warnings.catch_warnings(), mne.utils.use_log_level("error"):
        warnings.filterwarnings("ignore", message=".*(Converting data files|Encountered data in|"
                                "bad channels|data will be stored|Data will be stored).*")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="mne_bids")
        warnings.filterwarnings("ignore", message=".*non-voltage units.*")          # pybv, for the MIC channel
        mne_bids.write_raw_bids(raw, bids_path, event_id=EVENT_ID, format=fmt, allow_preload=True,
                                physical_range="channelwise" if fmt == "EDF" else "auto",
                                acpc_aligned=True, overwrite=True, verbose=False)


def _make_raw(plan: _SubjectPlan, contacts: list[_Contact], data: np.ndarray, events: pd.DataFrame,
              meas_date: datetime) -> mne.io.RawArray:
    names = [c.name for c in contacts] + [plan.extra[0]]
    types = [c.ch_type for c in contacts] + [plan.extra[1]]
    info = mne.create_info(names, plan.sfreq, types, verbose=False)
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.set_meas_date(meas_date)
    montage = mne.channels.make_dig_montage(ch_pos={c.name: c.pos for c in contacts}, coord_frame="ras")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*nasion not found")
        raw.set_montage(montage, on_missing="ignore", verbose=False)
    raw.info["line_freq"] = plan.line_freq
    raw.info["subject_info"] = {"his_id": f"sub-{plan.label}", "birthday": plan.birthday, "sex": plan.sex,
                                "hand": plan.hand}
    raw.info["bads"] = [plan.bad[0]]
    raw.set_annotations(mne.Annotations(events["onset"].to_numpy(), events["duration"].to_numpy(),
                                        events["trial_type"].tolist()))
    return raw


def _update_json(path: Path, extra: dict) -> None:
    content = json.loads(path.read_text()) if path.exists() else {}
    content.update(extra)
    path.write_text(json.dumps(content, indent=4, ensure_ascii=False) + "\n")


def _finish_subject(root: Path, plan: _SubjectPlan, contacts: list[_Contact]) -> None:
    """Add group/hemisphere/type/region to electrodes.tsv, group and bad-channel notes to channels.tsv."""
    folder = root / f"sub-{plan.label}" / f"ses-{SESSION}" / "ieeg"
    by_name = {c.name: c for c in contacts}
    for tsv in sorted(folder.glob("*_electrodes.tsv")):
        table = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
        table = table[table["name"].isin(list(by_name))]            # no rows for ECG/misc channels
        table["size"] = [str(_CONTACT_SIZE_MM2[by_name[n].ch_type]) for n in table["name"]]
        table["group"] = [by_name[n].group for n in table["name"]]
        table["hemisphere"] = [by_name[n].hemisphere for n in table["name"]]
        table["type"] = ["grid" if by_name[n].ch_type == "ecog" else "depth" for n in table["name"]]
        table["region"] = [by_name[n].region for n in table["name"]]
        table.to_csv(tsv, sep="\t", index=False, lineterminator="\n")
        _update_json(tsv.with_suffix(".json"), _ELECTRODES_JSON_EXTRA)
    for tsv in sorted(folder.glob("*_channels.tsv")):
        table = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
        table.insert(5, "group", [by_name[n].group if n in by_name else "n/a" for n in table["name"]])
        reason = {"flat": "flat signal (disconnected contact)",
                  "noise": "large noise, drift and pops (broken contact)"}[plan.bad[1]]
        table.loc[table["name"] == plan.bad[0], "status_description"] = reason
        table.to_csv(tsv, sep="\t", index=False, lineterminator="\n")
    for sidecar in sorted(folder.glob("*_ieeg.json")):
        _update_json(sidecar, _IEEG_JSON_EXTRA)
    for sidecar in sorted(folder.glob("*_coordsystem.json")):
        _update_json(sidecar, _COORDSYSTEM_JSON_EXTRA)
    for sidecar in sorted(folder.glob("*_events.json")):
        _update_json(sidecar, _EVENTS_JSON)


def _run_labels(plan: _SubjectPlan) -> list[str | None]:
    return [f"{r + 1:02d}" for r in range(plan.n_runs)] if plan.n_runs > 1 else [None]


def write_demo_dataset(root, *, n_subjects: int = 3, duration_s: float | None = None, seed: int = 42,
                       small: bool = False) -> DemoTruth:
    """Write the simulated BIDS iEEG dataset to ``root`` and return what was planted in it.

    Parameters
    ----------
    root : path-like
        Dataset folder; created if needed. It must be empty or hold an earlier demo dataset, whose subjects are
        then replaced (FileExistsError otherwise).
    n_subjects : int
        Number of subjects (>= 1); the first three set-ups (see the module docstring) repeat beyond three.
    duration_s : float | None
        Length of each run in seconds (>= 10); default 120, or 30 when ``small``.
    seed : int
        Seed of everything random; the same seed writes byte-identical files.
    small : bool
        Short runs for quick tests (same subjects, channels and formats).

    Returns
    -------
    DemoTruth
        Responsive channels per subject, the responsive condition and the bad channels; also written to
        ``root/code/demo_truth.json``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    duration = float(duration_s if duration_s is not None else (SMALL_DURATION_S if small else DEFAULT_DURATION_S))
    if not np.isfinite(duration) or duration < MIN_DURATION_S:
        raise ValueError(f"duration_s must be >= {MIN_DURATION_S:g} s, got {duration_s}")
    root = Path(root)
    if root.is_dir() and any(root.iterdir()) and not (root / "code" / "demo_truth.json").is_file():
        raise FileExistsError(f"{root} is not empty and holds no earlier demo dataset: not overwriting it")
    root.mkdir(parents=True, exist_ok=True)
    plans = [_subject_plan(i) for i in range(n_subjects)]
    for plan in plans:                      # a rewrite must not keep files of an earlier (longer) dataset
        shutil.rmtree(root / f"sub-{plan.label}", ignore_errors=True)

    truth = DemoTruth(responsive={}, condition=RESPONSE_CONDITION, bad_channels={}, sampling_rates={},
                      formats={}, line_freqs={}, runs={})
    for index, plan in enumerate(plans):
        subject_rng = np.random.default_rng([seed, index, 0])
        contacts = _contacts(plan, subject_rng)
        names = {c.name for c in contacts}
        for run_index, run in enumerate(_run_labels(plan)):
            rng = np.random.default_rng([seed, index, run_index + 1])
            n = int(round(duration * plan.sfreq))
            events = _events(n / plan.sfreq, rng)
            data = _simulate_run(plan, contacts, events, n, rng)
            meas_date = plan.meas_date + timedelta(seconds=run_index * (duration + 300.0))
            raw = _make_raw(plan, contacts, data, events, meas_date)
            bids_path = mne_bids.BIDSPath(subject=plan.label, session=SESSION, task=TASK, run=run,
                                          datatype="ieeg", root=root)
            _quiet_write(raw, bids_path, plan.fmt)
        _finish_subject(root, plan, contacts)
        truth.responsive[plan.label] = [name for name in plan.responsive if name in names]
        truth.bad_channels[plan.label] = [plan.bad[0]]
        truth.sampling_rates[plan.label] = plan.sfreq
        truth.formats[plan.label] = plan.fmt
        truth.line_freqs[plan.label] = plan.line_freq
        truth.runs[plan.label] = _run_labels(plan)

    _write_dataset_files(root, plans, truth, seed, duration)
    LOGGER.info("wrote the simulated dataset (%d subjects, %g s runs, seed %d) to %s", len(plans), duration, seed, root)
    return truth


def _write_dataset_files(root: Path, plans: list[_SubjectPlan], truth: DemoTruth, seed: int,
                         duration: float) -> None:
    mne_bids.make_dataset_description(
        path=root, name="bids-brainbert simulated iEEG listening dataset", dataset_type="raw",
        data_license="CC0", authors=["bids-brainbert developers"],
        how_to_acknowledge="Simulated data; no acknowledgement needed.",
        keywords=["iEEG", "sEEG", "ECoG", "simulation", "high gamma"],
        generated_by=[{"Name": "bids-brainbert", "Version": __version__,
                       "Description": f"bids_brainbert.io.simulate.write_demo_dataset(seed={seed}, "
                                      f"duration_s={duration:g})"}],
        overwrite=True, verbose=False)
    rows = []
    for plan in plans:
        electrodes = ", ".join(
            f"{s}1..{s}{_SHAFTS[s].n_contacts} ({'ECoG grid' if _SHAFTS[s].n_cols else 'sEEG'})" for s in plan.shafts)
        rows.append(f"| sub-{plan.label} | {plan.sfreq:g} Hz | {plan.fmt} | {plan.line_freq:g} Hz | "
                    f"{electrodes}, {plan.extra[0]} ({plan.extra[1]}) | {plan.n_runs} |")
    (root / "README.md").unlink(missing_ok=True)
    (root / "README").write_text(_README.format(seed=seed, table="\n".join(rows)))
    participants_tsv, participants_json = root / "participants.tsv", root / "participants.json"
    table = pd.read_csv(participants_tsv, sep="\t", dtype=str, keep_default_na=False)
    unused = [c for c in ("weight", "height") if c in table.columns and (table[c] == "n/a").all()]
    table.drop(columns=unused).to_csv(participants_tsv, sep="\t", index=False, lineterminator="\n")
    if participants_json.exists():
        content = json.loads(participants_json.read_text())
        for column in unused:
            content.pop(column, None)
        participants_json.write_text(json.dumps(content, indent=4, ensure_ascii=False) + "\n")
    code = root / "code"
    code.mkdir(exist_ok=True)
    (code / "demo_truth.json").write_text(json.dumps(truth.to_dict(), indent=2) + "\n")
