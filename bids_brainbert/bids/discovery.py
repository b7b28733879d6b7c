"""Which iEEG recordings a run selects.

Indexing walks only ``sub-*/[ses-*/]ieeg/`` folders with :func:`os.scandir` and parses entities from file names,
which keeps a 10k-file dataset well under a second (PyBIDS' full layout indexing takes tens of seconds there;
see ``benchmarks/discovery.py``). Filters follow the BIDS-Apps conventions: participant/session/task/run labels
and a PyBIDS-style ``--bids-filter-file``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import EmptySelectionError, InvalidDatasetError, UsageError

# Every BIDS-iEEG format: mne-bids reads the first four, bids_brainbert.io.formats MEF3 (.mefd folders) and NWB.
READABLE_EXTENSIONS = (".edf", ".vhdr", ".set", ".bdf", ".mefd", ".nwb")
UNREADABLE_EXTENSIONS: tuple[str, ...] = ()
# Data files that belong to a header file (.vhdr, .set): on their own they are a recording that cannot be read.
COMPANION_OF = {".eeg": ".vhdr", ".vmrk": ".vhdr", ".fdt": ".set"}
_IEEG_NAME = re.compile(r"^sub-.*_ieeg(?P<ext>\.[^_/]+)$", re.DOTALL)
_PAIR = re.compile(r"^[a-zA-Z]+-[a-zA-Z0-9]+$")
ENTITY_ORDER = ("subject", "session", "task", "acquisition", "run")
_KEY_TO_ENTITY = {"sub": "subject", "ses": "session", "task": "task", "acq": "acquisition", "run": "run"}
_FILENAME = re.compile(r"^(?P<stem>(?:[a-zA-Z]+-[a-zA-Z0-9]+_)+)ieeg(?P<ext>\.[a-zA-Z0-9.]+)$")


@dataclass(frozen=True)
class Recording:
    """One iEEG recording file of the input dataset."""

    path: Path
    entities: dict[str, str] = field(hash=False)

    @property
    def subject(self) -> str:
        return self.entities["subject"]

    @property
    def relative_path(self) -> str:
        """Path relative to the dataset root, POSIX style (for BIDS URIs and messages)."""
        parts = self.path.parts
        idx = max(i for i, p in enumerate(parts) if p == f"sub-{self.subject}")
        return "/".join(parts[idx:])

    @property
    def stem_entities(self) -> str:
        """``sub-01_ses-01_task-x_run-01``: the file name up to the suffix."""
        return self.path.name.split("_ieeg")[0]

    @property
    def extension(self) -> str:
        return _FILENAME.match(self.path.name)["ext"]


def parse_entities(filename: str) -> dict[str, str] | None:
    """Entities of a ``*_ieeg.<ext>`` file name, or None if it is not one."""
    match = _FILENAME.match(filename)
    if match is None:
        return None
    entities: dict[str, str] = {}
    for pair in match["stem"].rstrip("_").split("_"):
        key, _, value = pair.partition("-")
        entities[_KEY_TO_ENTITY.get(key, key)] = value
    if "subject" not in entities:
        return None
    return entities


def _check_name(path: Path, entities: dict[str, str] | None, subject_dir: str, session_dir: str | None) -> None:
    """An iEEG file whose name is not a valid BIDS name, or whose entities disagree with the folders it sits in
    (a subject folder that is a symlink alias of another, a file copied into the wrong subject), is refused
    by name: it would otherwise vanish from the run silently or be written under the wrong subject."""
    if entities is None:
        stem = path.name.rsplit("_ieeg", 1)[0]
        bad = next((pair for pair in stem.split("_") if not _PAIR.match(pair)), stem)
        raise InvalidDatasetError(f"{path}: not a valid BIDS iEEG file name: {bad!r} is not an entity-label pair "
                                  "(labels are ASCII letters and digits only)")
    folder_subject = subject_dir[len("sub-"):]
    if entities["subject"] != folder_subject:
        raise InvalidDatasetError(f"{path}: a file of sub-{entities['subject']} in the folder {subject_dir} "
                                  "(a misplaced file, or a subject folder that aliases another)")
    folder_session = session_dir[len("ses-"):] if session_dir else None
    if entities.get("session") != folder_session:
        raise InvalidDatasetError(f"{path}: its session ({entities.get('session') or 'none'}) does not match the "
                                  f"folder {session_dir or subject_dir + '/ieeg'}")


def index_recordings(bids_dir: Path) -> list[Recording]:
    """Every ``*_ieeg.*`` recording under ``bids_dir`` (sorted), readable or not.

    BrainVision sidecars (.eeg/.vmrk) and EEGLAB .fdt files are not recordings on their own; one without its
    header file (.vhdr, .set) is listed as a recording (that cannot be read), so that it is reported rather than
    skipped. Raises InvalidDatasetError for an iEEG file name that is not valid BIDS or disagrees with its folders.
    """
    recordings: list[Recording] = []
    with os.scandir(bids_dir) as top:
        subjects = sorted(e.path for e in top if e.is_dir() and e.name.startswith("sub-"))
    for subject_dir in subjects:
        with os.scandir(subject_dir) as entries:
            children = sorted((e for e in entries if e.is_dir()), key=lambda e: e.name)
        data_dirs = [(c.path, None) for c in children if c.name == "ieeg"]
        for child in children:
            if child.name.startswith("ses-"):
                ieeg_dir = os.path.join(child.path, "ieeg")
                if os.path.isdir(ieeg_dir):
                    data_dirs.append((ieeg_dir, child.name))
        for data_dir, session_dir in data_dirs:
            with os.scandir(data_dir) as files:
                names = sorted(f.name for f in files)
            present = set(names)
            orphans: set[str] = set()
            for name in names:
                match = _IEEG_NAME.match(name)
                ext = match["ext"] if match else ""
                if ext not in READABLE_EXTENSIONS + UNREADABLE_EXTENSIONS + tuple(COMPANION_OF):
                    continue
                path = Path(data_dir) / name
                entities = parse_entities(name)
                _check_name(path, entities, os.path.basename(subject_dir), session_dir)
                if ext in COMPANION_OF:
                    stem = name[: -len(ext)]
                    if stem + COMPANION_OF[ext] in present or stem in orphans:
                        continue
                    orphans.add(stem)   # one recording per missing header, named by its first data file
                recordings.append(Recording(path, entities))
    return recordings


def normalise_label(label: str, prefix: str) -> str:
    """``sub-01`` and ``01`` both mean ``01``."""
    label = label.strip()
    return label[len(prefix) + 1:] if label.startswith(prefix + "-") else label


LABEL_FILE_MAX_BYTES = 1 << 20   # a million bytes of labels: far more subjects than any dataset has
_LABEL = re.compile(r"^[A-Za-z0-9]+$")


def expand_labels(values: Iterable[str], prefix: str) -> list[str]:
    """Labels from the command line; an existing file path stands for the labels it lists (one per line/space)."""
    out: list[str] = []
    for value in values:
        candidate = Path(value)
        if os.sep in value or value.endswith((".txt", ".tsv", ".csv")):
            out.extend(_labels_in_file(candidate, prefix))
        else:
            out.append(normalise_label(value, prefix))
    return out


def _labels_in_file(path: Path, prefix: str) -> list[str]:
    """The labels a label file lists; a bad line is reported by its number, never echoed (the file may be any
    file the user can read, e.g. a mistyped path to something private)."""
    if not path.is_file():
        raise UsageError(f"{path}: label file not found")
    if path.stat().st_size > LABEL_FILE_MAX_BYTES:
        raise UsageError(f"{path}: label file larger than {LABEL_FILE_MAX_BYTES} bytes: not a list of labels")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: label file is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: label file cannot be read ({exc.strerror})") from None
    labels = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in line.replace(",", " ").split():
            if token.lower() == "participant_id":
                continue
            label = normalise_label(token, prefix)
            if not _LABEL.match(label):
                raise UsageError(f"{path}: line {number} is not a list of {prefix} labels (letters and digits "
                                 "only, optionally prefixed with " + f"'{prefix}-')")
            labels.append(label)
    return labels


def read_filter_file(path: Path) -> dict[str, Any]:
    """Entity filters for iEEG recordings from a PyBIDS-style JSON filter file.

    The file maps query names to entity filters (``{"ieeg": {"session": "01", "run": [1, 2]}}``); the ``ieeg``
    query is used, or a file holding entity filters directly. Values mean what they mean to fMRIPrep, which hands
    them to PyBIDS' ``layout.get``: a label or a list of labels (any of them), ``null`` (the entity is absent),
    ``"*"`` (present, any label), the spellings ``"Query.NONE"``, ``"Query.ANY"`` (or ``"Query.REQUIRED"``) and
    ``"Query.OPTIONAL"``, and regular expressions (searched in the label) when ``"regex_search": true``.
    ``tests/test_discovery.py`` checks the selection against PyBIDS' own on the same files.
    """
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: BIDS filter file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: malformed JSON in BIDS filter file ({exc})") from None
    except RecursionError:
        raise UsageError(f"{path}: BIDS filter file nested too deeply to be an entity filter") from None
    if not isinstance(content, dict):
        raise UsageError(f"{path}: a BIDS filter file must hold a JSON object")
    filters = content.get("ieeg", content)
    if not isinstance(filters, dict):
        raise UsageError(f"{path}: the 'ieeg' query must be a JSON object of entity filters")
    known = set(ENTITY_ORDER) | {"datatype", "suffix", "extension"}
    unknown = sorted(set(filters) - known - {"regex_search"})
    if unknown:
        raise UsageError(f"{path}: unknown BIDS entities {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if not isinstance(filters.get("regex_search", False), bool):
        raise UsageError(f"{path}: regex_search must be true or false")
    for entity, wanted in filters.items():
        for option in wanted if isinstance(wanted, list) else [] if wanted == "*" else [wanted]:
            if filters.get("regex_search") and isinstance(option, str) and option not in _QUERIES:
                try:
                    re.compile(option)
                except re.error as exc:
                    raise UsageError(f"{path}: {entity}: {option!r} is not a regular expression ({exc})") from None
    return filters


# PyBIDS' Query values, as fMRIPrep's filter files spell them ("*" and null only at the top of an entity's value)
_QUERIES = {"Query.NONE": "none", "Query.ANY": "any", "Query.REQUIRED": "any", "Query.OPTIONAL": "optional"}


def _matches(value: str | None, wanted: Any, entity: str, regex: bool = False) -> bool:
    if wanted is None or wanted == "*":
        wanted = "Query.NONE" if wanted is None else "Query.ANY"
    return any(_matches_one(value, option, entity, regex) for option in (wanted if isinstance(wanted, list)
                                                                          else [wanted]))


def _matches_one(value: str | None, option: Any, entity: str, regex: bool) -> bool:
    query = _QUERIES.get(option) if isinstance(option, str) else ("none" if option is None else None)
    if query is not None:
        return query == "optional" or (value is None) == (query == "none")
    if value is None or isinstance(option, (bool, dict, list)):
        return False
    if entity == "extension" and isinstance(option, str) and not regex:
        option = "." + option.lstrip(".")
    if regex and isinstance(option, str):
        return re.search(option, value) is not None
    if entity == "run":  # an index: run-1 and run-01 are the same run (PyBIDS compares them as integers)
        number = _as_int(option)
        return number is not None and value.isdigit() and number == int(value)
    return isinstance(option, str) and option == value


def _as_int(option: Any) -> int | None:
    if isinstance(option, str):
        return int(option) if option.isdigit() else None
    if isinstance(option, (int, float)) and float(option).is_integer():
        return int(option)
    return None


@dataclass
class Selection:
    """The filters of one run."""

    participant_label: list[str] = field(default_factory=list)
    exclude_participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    task_label: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)
    entity_filters: dict[str, Any] = field(default_factory=dict)

    def accepts(self, recording: Recording) -> bool:
        ent = recording.entities
        checks = {
            "subject": self.participant_label,
            "session": self.session_label,
            "task": self.task_label,
            "run": self.run,
        }
        for entity, wanted in checks.items():
            if wanted and not _matches(ent.get(entity), list(wanted), entity):
                return False
        if ent["subject"] in self.exclude_participant_label:
            return False
        regex = bool(self.entity_filters.get("regex_search", False))
        for entity, wanted in self.entity_filters.items():
            if entity == "regex_search":
                continue
            if entity in ("datatype", "suffix"):
                value = "ieeg"
            else:
                value = recording.extension if entity == "extension" else ent.get(entity)
            if not _matches(value, wanted, entity, regex):
                return False
        return True


def check_dataset_root(bids_dir: Path) -> dict[str, Any]:
    """Minimal structural checks; returns dataset_description.json. Raises InvalidDatasetError (exit 16)."""
    if not bids_dir.exists():
        raise InvalidDatasetError(f"{bids_dir}: BIDS directory does not exist")
    if not bids_dir.is_dir():
        raise InvalidDatasetError(f"{bids_dir}: not a directory")
    description_file = bids_dir / "dataset_description.json"
    if not description_file.is_file():
        raise InvalidDatasetError(f"{description_file}: missing; not a BIDS dataset root")
    try:
        description = json.loads(description_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidDatasetError(f"{description_file}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidDatasetError(f"{description_file}: JSON nested too deeply to be a dataset description") from None
    if not isinstance(description, dict) or "Name" not in description or "BIDSVersion" not in description:
        raise InvalidDatasetError(f"{description_file}: must hold an object with Name and BIDSVersion")
    return description


def select_recordings(bids_dir: Path, selection: Selection) -> list[Recording]:
    """Recordings matching the selection. Raises EmptySelectionError (exit 18) when nothing matches."""
    everything = index_recordings(bids_dir)
    if not everything:
        raise InvalidDatasetError(f"{bids_dir}: no iEEG recordings (sub-*/[ses-*/]ieeg/*_ieeg.*) found")
    known_subjects = {r.subject for r in everything}
    unknown = sorted(set(selection.participant_label) - known_subjects)
    if unknown:
        raise EmptySelectionError(
            f"{bids_dir}: participant label(s) {', '.join(unknown)} not found "
            f"(dataset has {', '.join(sorted(known_subjects))})"
        )
    chosen = [r for r in everything if selection.accepts(r)]
    if not chosen:
        raise EmptySelectionError(f"{bids_dir}: the selection (labels and filters) matches no iEEG recording")
    return chosen
