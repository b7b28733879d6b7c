"""The naming module spells every derivative name once and reads each back; no other module builds or slices
one."""

import re
from pathlib import Path

from bids_brainbert.bids import names

PACKAGE = Path(__file__).resolve().parents[1] / "bids_brainbert"
STEMS = ("sub-01_task-rest_run-01", "sub-P7_ses-02_task-listening_acq-clinical_run-3", "sub-1_task-x")


def test_every_per_recording_name_round_trips():
    for stem in STEMS:
        for kind in ("superlet", "stft"):
            for role, name in names.spectrogram_files(stem, kind).items():
                parsed = names.parse(name)
                assert (parsed.stem, parsed.desc) == (stem, kind) and str(parsed) == name, role
                assert names.recording_stem(name) == stem
            assert names.channels_of(names.spectrogram_files(stem, kind)["data"]) == \
                names.spectrogram_files(stem, kind)["channels"]
        for label in ("brainbert", "brainbertRandom", "tuned2"):
            for role, name in names.embedding_files(stem, label).items():
                parsed = names.parse(name)
                assert str(parsed) == name and parsed.stem == stem and parsed.suffix == "embeddings"
                assert parsed.model_label == label and parsed.is_event_embedding == role.startswith("events")


def test_group_names_round_trip():
    for desc, suffix in (("decoding", "scores"), ("decoding", "summary"), ("dimensionality", "regions")):
        for extension in (".tsv", ".json"):
            name = names.group_table("listening", desc, suffix, extension)
            parsed = names.parse(name)
            assert (parsed.stem, parsed.desc, parsed.suffix, parsed.extension) == ("task-listening", desc, suffix,
                                                                                  extension)
    figure = names.figure("listening", "decoding")
    assert figure.startswith(names.FIGURES_DIR + "/") and str(names.parse(Path(figure).name)) == Path(figure).name
    assert names.model_dir("brainbert") == "models/desc-brainbert"
    assert names.subject_report("01") == "sub-01.html" and names.parse("sub-01.html") is None


def test_embedding_labels_are_read_back_from_the_files(tmp_path):
    stem = STEMS[1]
    for label in ("brainbert", "brainbertRandom"):
        for name in names.embedding_files(stem, label).values():
            (tmp_path / name).touch()
    (tmp_path / names.embedding_files("sub-01_task-rest", "other")["windows"]).touch()   # another recording
    assert sorted(names.embedding_labels(tmp_path, stem, events=False)) == ["brainbert", "brainbertRandom"]
    assert sorted(names.embedding_labels(tmp_path, stem, events=True)) == ["brainbert", "brainbertRandom"]


def test_no_other_module_spells_or_slices_a_derivative_name():
    spelled = re.compile(r'f"[^"\n]*_desc-\{|\.split\("_desc-"\)|replace\("_spectrogram\.npy"|desc-\*Events')
    offenders = [path.relative_to(PACKAGE).as_posix() for path in sorted(PACKAGE.rglob("*.py"))
                 if path.name != "names.py" and spelled.search(path.read_text())]
    assert offenders == []
