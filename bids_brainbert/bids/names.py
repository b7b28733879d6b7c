"""Every derivative file name we write, spelled here once and parsed back here (writers, readers, the API and the
tests all use this module; nothing else builds or slices a derivative name).

Per recording, beside its raw folder (``<entities>`` = the recording's, e.g. ``sub-01_ses-01_task-x_run-01``)::

    <entities>_desc-<kind>_spectrogram.npy|.json   kind: superlet | stft
    <entities>_desc-<kind>_channels.tsv|.json      the spectrogram's channel axis
    <entities>_desc-<label>_embeddings.npy|.json   sliding-window embeddings of model <label>
    <entities>_desc-<label>Events_embeddings.npy|.json|.tsv   event embeddings (+ the events kept)

At the output root: ``task-<task>_desc-<desc>_<suffix>.tsv|.json`` group tables, ``figures/task-<task>_desc-
<name>_figure.png``, ``sub-<label>.html`` and ``group_ieeg.html`` reports, ``models/desc-<label>/`` models,
``sub-<label>/log/<run id>/`` and ``logs/group/<run id>/`` logs.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

EVENTS = "Events"              # desc suffix of event embeddings: <label>Events
MODELS_DIR = "models"
FIGURES_DIR = "figures"
GROUP_REPORT = "group_ieeg.html"
_NAME = re.compile(r"^(?P<stem>(?:[a-zA-Z]+-[a-zA-Z0-9]+_)*?[a-zA-Z]+-[a-zA-Z0-9]+)_desc-(?P<desc>[a-zA-Z0-9]+)"
                   r"_(?P<suffix>[a-zA-Z0-9]+)(?P<extension>\.[a-z0-9.]+)$")


@dataclass(frozen=True)
class DerivativeName:
    """``<stem>_desc-<desc>_<suffix><extension>``."""

    stem: str          # the entities before desc: a recording's, or task-<task>
    desc: str
    suffix: str
    extension: str

    def __str__(self) -> str:
        return f"{self.stem}_desc-{self.desc}_{self.suffix}{self.extension}"

    @property
    def is_event_embedding(self) -> bool:
        return self.suffix == "embeddings" and self.desc.endswith(EVENTS)

    @property
    def model_label(self) -> str:
        """The model label of an embedding file (``<label>`` of ``<label>Events`` too)."""
        return self.desc[: -len(EVENTS)] if self.is_event_embedding else self.desc


def parse(name: str) -> DerivativeName | None:
    """The parts of a derivative file name, or None when it is not one of ours."""
    match = _NAME.match(name)
    return DerivativeName(**match.groupdict()) if match else None


def spectrogram_files(stem: str, kind: str) -> dict[str, str]:
    """A recording's spectrogram derivative: data, sidecar, channel table and its sidecar."""
    return {"data": f"{stem}_desc-{kind}_spectrogram.npy", "sidecar": f"{stem}_desc-{kind}_spectrogram.json",
            "channels": f"{stem}_desc-{kind}_channels.tsv", "channels_sidecar": f"{stem}_desc-{kind}_channels.json"}


def channels_of(spectrogram: str) -> str:
    """The channel table beside a spectrogram file."""
    name = parse(spectrogram)
    return str(DerivativeName(name.stem, name.desc, "channels", ".tsv"))


def embedding_files(stem: str, label: str) -> dict[str, str]:
    """A recording's embeddings of model ``label``: sliding windows and event windows."""
    windows, events = f"{stem}_desc-{label}_embeddings", f"{stem}_desc-{label}{EVENTS}_embeddings"
    return {"windows": f"{windows}.npy", "windows_sidecar": f"{windows}.json", "events": f"{events}.npy",
            "events_sidecar": f"{events}.json", "events_table": f"{events}.tsv"}


def recording_stem(derivative: str) -> str:
    """The recording entities of a per-recording derivative name."""
    return parse(derivative).stem


def embedding_labels(folder: Path, stem: str, events: bool) -> list[str]:
    """Model labels with (event, else sliding-window) embeddings of the recording ``stem`` in ``folder``."""
    labels = []
    for path in sorted(folder.glob(f"{glob.escape(stem)}_desc-*_embeddings.npy")):
        name = parse(path.name)
        if name is not None and name.stem == stem and name.is_event_embedding == events:
            labels.append(name.model_label)
    return labels


def group_table(task: str, desc: str, suffix: str, extension: str = ".tsv") -> str:
    return f"task-{task}_desc-{desc}_{suffix}{extension}"


def figure(task: str, name: str) -> str:
    return f"{FIGURES_DIR}/task-{task}_desc-{name}_figure.png"


def subject_report(subject: str) -> str:
    return f"sub-{subject}.html"


def model_dir(label: str) -> str:
    return f"{MODELS_DIR}/desc-{label}"


def population_model_dir(task: str, label: str) -> str:
    """Folder of a population model, under ``models/population/``."""
    return f"task-{task}_desc-{label}"
