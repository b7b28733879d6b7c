"""Discovery and selection on BIDS trees (names only; the files' content is not read here)."""

import json
from pathlib import Path

import pytest

from bids_brainbert.bids.discovery import (Selection, check_dataset_root, expand_labels, index_recordings,
                                           parse_entities, read_filter_file, select_recordings)
from bids_brainbert.errors import EmptySelectionError, InvalidDatasetError, UsageError


def make_tree(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.10.0"}))
    files = [
        "sub-01/ses-01/ieeg/sub-01_ses-01_task-rest_run-01_ieeg.edf",
        "sub-01/ses-01/ieeg/sub-01_ses-01_task-rest_run-02_ieeg.vhdr",
        "sub-01/ses-01/ieeg/sub-01_ses-01_task-rest_run-02_ieeg.eeg",
        "sub-01/ses-02/ieeg/sub-01_ses-02_task-motor_run-1_ieeg.edf",
        "sub-02/ieeg/sub-02_task-rest_ieeg.set",
        "sub-02/ieeg/sub-02_task-rest_ieeg.fdt",
        "sub-02/ieeg/sub-02_task-rest_channels.tsv",
        "sub-03/ieeg/sub-03_task-rest_acq-clinical_ieeg.nwb",
        "sub-04/anat/sub-04_T1w.nii.gz",
    ]
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).touch()
    return root


def test_parse_entities():
    assert parse_entities("sub-01_ses-02_task-x_acq-y_run-03_ieeg.vhdr") == {
        "subject": "01", "session": "02", "task": "x", "acquisition": "y", "run": "03"}
    assert parse_entities("sub-01_task-x_channels.tsv") is None
    assert parse_entities("task-x_ieeg.edf") is None


def test_index_finds_recordings_only(tmp_path):
    recordings = index_recordings(make_tree(tmp_path))
    names = [r.path.name for r in recordings]
    assert names == ["sub-01_ses-01_task-rest_run-01_ieeg.edf", "sub-01_ses-01_task-rest_run-02_ieeg.vhdr",
                     "sub-01_ses-02_task-motor_run-1_ieeg.edf", "sub-02_task-rest_ieeg.set",
                     "sub-03_task-rest_acq-clinical_ieeg.nwb"]
    assert recordings[0].relative_path == "sub-01/ses-01/ieeg/sub-01_ses-01_task-rest_run-01_ieeg.edf"
    assert recordings[1].extension == ".vhdr"


@pytest.mark.parametrize("selection, expected", [
    (Selection(participant_label=["02"]), ["sub-02_task-rest_ieeg.set"]),
    (Selection(session_label=["02"]), ["sub-01_ses-02_task-motor_run-1_ieeg.edf"]),
    (Selection(task_label=["motor"]), ["sub-01_ses-02_task-motor_run-1_ieeg.edf"]),
    (Selection(run=["1"]), ["sub-01_ses-01_task-rest_run-01_ieeg.edf", "sub-01_ses-02_task-motor_run-1_ieeg.edf"]),
    (Selection(exclude_participant_label=["01", "03"]), ["sub-02_task-rest_ieeg.set"]),
    (Selection(entity_filters={"session": None}), ["sub-02_task-rest_ieeg.set", "sub-03_task-rest_acq-clinical_ieeg.nwb"]),
    (Selection(entity_filters={"acquisition": "clinical"}), ["sub-03_task-rest_acq-clinical_ieeg.nwb"]),
    (Selection(entity_filters={"extension": ["vhdr", ".set"]}), ["sub-01_ses-01_task-rest_run-02_ieeg.vhdr",
                                                                "sub-02_task-rest_ieeg.set"]),
])
def test_selection(tmp_path, selection, expected):
    chosen = select_recordings(make_tree(tmp_path), selection)
    assert [r.path.name for r in chosen] == expected


def test_unknown_participant_and_empty_selection(tmp_path):
    root = make_tree(tmp_path)
    with pytest.raises(EmptySelectionError, match="99"):
        select_recordings(root, Selection(participant_label=["99"]))
    with pytest.raises(EmptySelectionError):
        select_recordings(root, Selection(task_label=["nothing"]))


def test_labels_with_and_without_prefix_and_from_file(tmp_path):
    label_file = tmp_path / "labels.txt"
    label_file.write_text("participant_id\nsub-03\n04\n")
    assert expand_labels(["sub-01", "02", str(label_file)], "sub") == ["01", "02", "03", "04"]
    with pytest.raises(UsageError, match="not found"):
        expand_labels([str(tmp_path / "missing.txt")], "sub")


def test_filter_file(tmp_path):
    good = tmp_path / "f.json"
    good.write_text(json.dumps({"ieeg": {"session": "01", "run": [2]}}))
    assert read_filter_file(good) == {"session": "01", "run": [2]}
    chosen = select_recordings(make_tree(tmp_path / "ds"), Selection(entity_filters=read_filter_file(good)))
    assert [r.path.name for r in chosen] == ["sub-01_ses-01_task-rest_run-02_ieeg.vhdr"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="malformed JSON"):
        read_filter_file(bad)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"ieeg": {"colour": "red"}}))
    with pytest.raises(UsageError, match="colour"):
        read_filter_file(unknown)


def test_dataset_root_checks(tmp_path):
    with pytest.raises(InvalidDatasetError, match="does not exist"):
        check_dataset_root(tmp_path / "nope")
    with pytest.raises(InvalidDatasetError, match="dataset_description.json: missing"):
        check_dataset_root(tmp_path)
    (tmp_path / "dataset_description.json").write_text("{")
    with pytest.raises(InvalidDatasetError, match="not valid JSON"):
        check_dataset_root(tmp_path)
    (tmp_path / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    assert check_dataset_root(tmp_path)["Name"] == "x"
    with pytest.raises(InvalidDatasetError, match="no iEEG recordings"):
        select_recordings(tmp_path, Selection())


# The filters of fMRIPrep-style filter files, each compared with PyBIDS' own selection on the same tree.
PYBIDS_CASES = [
    {}, {"session": "01"}, {"session": ["01", "02"]}, {"session": None}, {"session": "*"},
    {"session": "Query.NONE"}, {"session": "Query.ANY"}, {"run": "Query.REQUIRED"}, {"session": "Query.OPTIONAL"},
    {"run": 1}, {"run": "1"}, {"run": "01"}, {"run": [1, "2"]}, {"run": 1.0}, {"run": 3},
    {"acquisition": [None, "clinical"]}, {"acquisition": ["Query.NONE", "hd"]}, {"acquisition": "clinical"},
    {"subject": ["01", "Query.ANY"]}, {"subject": 1}, {"subject": "1"}, {"task": "REST"}, {"task": "rest"},
    {"extension": "edf"}, {"extension": [".bdf", "set"]}, {"suffix": "bold"}, {"datatype": "anat"},
    {"suffix": "ieeg", "datatype": "ieeg"},
    {"run": "0?1", "regex_search": True}, {"task": "re", "regex_search": True}, {"run": "1", "regex_search": True},
    {"subject": "0[12]", "regex_search": True}, {"task": "^rest$", "regex_search": True},
    {"extension": "ed", "regex_search": True}, {"session": ["^02$", None], "regex_search": True},
    {"session": "*", "regex_search": True}, {"task": "rest", "regex_search": False},
    {"session": "01", "task": ["rest", "motor"], "run": [2]},
]


def _pybids_value(value):
    """What fMRIPrep hands PyBIDS for a filter value: null and "*" become Query.NONE / Query.ANY (top level)."""
    from bids.layout import Query

    spellings = {"Query.NONE": Query.NONE, "Query.ANY": Query.ANY, "Query.REQUIRED": Query.REQUIRED,
                 "Query.OPTIONAL": Query.OPTIONAL}
    if value is None or value == "*":
        return Query.NONE if value is None else Query.ANY
    if isinstance(value, list):
        return [spellings.get(v, v) if isinstance(v, str) else v for v in value]
    return spellings.get(value, value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def pybids_tree(tmp_path_factory):
    from bids import BIDSLayout

    root = make_tree(tmp_path_factory.mktemp("pybids") / "ds")
    for name in ("sub-04/ses-02/ieeg/sub-04_ses-02_task-motor_acq-hd_run-3_ieeg.bdf",
                 "sub-05/ieeg/sub-05_task-rest_run-2_ieeg.edf"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return root, BIDSLayout(root, validate=False)


@pytest.mark.parametrize("filters", PYBIDS_CASES, ids=[json.dumps(c) for c in PYBIDS_CASES])
def test_filter_file_selects_what_pybids_selects(pybids_tree, tmp_path, filters):
    """--bids-filter-file means what PyBIDS' layout.get(**filters) means, file for file (fMRIPrep's defaults for
    the query: datatype and suffix ieeg, the recordings' extensions)."""
    root, layout = pybids_tree
    filter_file = tmp_path / "filters.json"
    filter_file.write_text(json.dumps({"ieeg": filters}))
    selection = Selection(entity_filters=read_filter_file(filter_file))
    ours = [r.path.name for r in index_recordings(root) if selection.accepts(r)]
    query = {"datatype": "ieeg", "suffix": "ieeg", "extension": [".edf", ".vhdr", ".set", ".bdf", ".nwb"]}
    query.update({key: value if key == "regex_search" else _pybids_value(value) for key, value in filters.items()})
    theirs = sorted(Path(f.path).name for f in layout.get(**query))
    assert ours == theirs
    assert len(theirs) > 0 or filters in ({"run": 3}, {"suffix": "bold"}, {"datatype": "anat"}, {"subject": 1},
                                           {"subject": "1"}, {"task": "REST"})


def test_filter_file_refuses_a_bad_regular_expression(tmp_path):
    filter_file = tmp_path / "filters.json"
    filter_file.write_text(json.dumps({"ieeg": {"task": "(rest", "regex_search": True}}))
    with pytest.raises(UsageError, match="task: '\\(rest' is not a regular expression"):
        read_filter_file(filter_file)
