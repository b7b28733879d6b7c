"""A corpus of malformed inputs: each one gets one error line naming the file and the problem, the documented
exit code, and leaves no output behind for what it broke.

Every case starts from the tiny valid dataset of ``conftest.tiny_dataset`` (written with mne-bids: three 8 s
recordings of six sEEG contacts), breaks it in one way and runs the command line in-process. A case that breaks a
whole run (exit 16, 17, 18, 64, 65) must not create the output directory; a case that breaks one recording
(exit 1) must leave no derivative or temporary file for it while the other recordings are written completely.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from bids_brainbert.bids.derivatives import TMP_MARK, is_complete, spectrogram_paths
from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.cli.run import main
from bids_brainbert.model.checkpoints import save_checkpoint
from bids_brainbert.model.encoder import BrainBertPretrainModel, ModelConfig
from conftest import TINY_CHANNELS, tiny_signal, write_tiny_recording

RUN1 = "sub-01/ieeg/sub-01_task-rest_run-01"
RUN2 = "sub-01/ieeg/sub-01_task-rest_run-02"
SUB2 = "sub-02/ieeg/sub-02_task-rest"
ALL_STEMS = ("sub-01_task-rest_run-01", "sub-01_task-rest_run-02", "sub-02_task-rest")


@dataclass
class Ctx:
    """What a breaker may change: the dataset copy, the command line, a scratch folder."""

    root: Path
    out: Path
    tmp: Path
    argv: list[str] = field(default_factory=list)

    def add(self, *args) -> None:
        self.argv += [str(a) for a in args]


@dataclass(frozen=True)
class Case:
    id: str
    brk: Callable[[Ctx], None]
    code: int
    file: str              # the error line names this file (a path suffix, or a {placeholder} of Ctx)
    keyword: str           # ... and says this about it
    broken: tuple[str, ...] = ()   # recordings (file stems) that must fail; the others must be written


# ------------------------------------------------------------------------------------------------ breakers
def edit_text(path: Path, old: str, new: str, count: int = -1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def edit_tsv(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    change(table).to_csv(path, sep="\t", index=False, lineterminator="\n")


def set_column(column: str, value: str, rows=slice(None)) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[table.index[rows], column] = value
        return table
    return change


def truncate(path: Path, keep: float | int) -> None:
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep) if isinstance(keep, float) else keep])


def rename_channel_in_edf_header(path: Path, old: bytes, new: bytes) -> None:
    content = bytearray(path.read_bytes())
    at = content.index(old.ljust(16), 256)        # the 16-byte label fields follow the 256-byte fixed header
    content[at:at + 16] = new.ljust(16)
    path.write_bytes(bytes(content))


def extra_recording(data_change: Callable[[np.ndarray], np.ndarray] | None = None, **kwargs) -> Callable[[Ctx], None]:
    """A fourth recording (sub-03, BrainVision: float32 keeps NaN) with a modified signal or rate/length."""
    def brk(ctx: Ctx) -> None:
        sfreq, seconds = kwargs.get("sfreq", 512.0), kwargs.get("seconds", 8.0)
        data = tiny_signal(int(round(sfreq * seconds)), seed=9)
        if data_change is not None:
            data = data_change(data)
        write_tiny_recording(ctx.root, "03", None, "BrainVision", sfreq=sfreq, seconds=seconds, data=data)
    return brk


def every_seeg(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def apply(data: np.ndarray) -> np.ndarray:
        data = data.copy()
        for i in range(len(TINY_CHANNELS)):
            data[i] = change(data[i])
        return data
    return apply


def clip(row: np.ndarray) -> np.ndarray:
    limit = np.quantile(np.abs(row), 0.7)    # 30% of the samples on the rails
    return np.clip(row, -limit, limit)


def tiny_checkpoint(ctx: Ctx, n_freqs: int) -> Path:
    model = BrainBertPretrainModel(ModelConfig(n_freqs=n_freqs, d_model=8, n_layers=1, n_heads=2, d_ff=16))
    return save_checkpoint(ctx.tmp / f"model{n_freqs}", model)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def only_description(ctx: Ctx) -> None:
    for child in ctx.root.iterdir():
        if child.name != "dataset_description.json":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def ieeg_to_eeg(ctx: Ctx) -> None:
    for folder in ctx.root.glob("sub-*/ieeg"):
        folder.rename(folder.with_name("eeg"))
        for path in folder.with_name("eeg").glob("*_ieeg.*"):
            path.rename(path.with_name(path.name.replace("_ieeg.", "_eeg.")))


def set_model(ctx: Ctx, path: Path) -> None:
    ctx.add("--model", path)


def config_file(ctx: Ctx, text: str) -> None:
    ctx.add("--config-file", write(ctx.tmp / "options.toml", text))


def filter_file(ctx: Ctx, text: str) -> None:
    ctx.add("--bids-filter-file", write(ctx.tmp / "filter.json", text))


def corrupt_weights(ctx: Ctx) -> None:
    checkpoint = tiny_checkpoint(ctx, 40)
    with open(checkpoint / "model.safetensors", "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\xff" * 8)            # flips weights: the SHA-256 in config.json no longer matches
    ctx.add("--model", checkpoint)


def root_to(ctx: Ctx, path: Path) -> None:
    ctx.argv[0] = str(path)


def out_to(ctx: Ctx, path: Path) -> None:
    ctx.argv[1] = str(path)
    ctx.out = path


# ------------------------------------------------------------------------------------------------ the corpus
WHOLE_RUN = [
    # the dataset itself
    Case("no-dataset-description", lambda c: (c.root / "dataset_description.json").unlink(), 16,
         "dataset_description.json", "missing"),
    Case("dataset-description-not-json", lambda c: write(c.root / "dataset_description.json", "{'Name': 1"), 16,
         "dataset_description.json", "not valid JSON"),
    Case("dataset-description-without-bidsversion",
         lambda c: write(c.root / "dataset_description.json", '{"Name": "x"}'), 16,
         "dataset_description.json", "BIDSVersion"),
    Case("not-a-bids-folder-subject-given", lambda c: root_to(c, c.root / "sub-01"), 16,
         "sub-01/dataset_description.json", "not a BIDS dataset root"),
    Case("bids-dir-is-a-file", lambda c: root_to(c, c.root / "README"), 16, "README", "not a directory"),
    Case("bids-dir-missing", lambda c: root_to(c, c.tmp / "nowhere"), 16, "nowhere", "does not exist"),
    Case("empty-dataset", only_description, 16, "{root}", "no iEEG recordings"),
    Case("no-ieeg-recordings", ieeg_to_eeg, 16, "{root}", "no iEEG recordings"),
    Case("bids-validator-errors", lambda c: (write(c.root / "sub-01" / "ieeg" / "notes.txt", "x"),
                                            c.argv.remove("--skip-bids-validation")), 16,
         "{root}", "BIDS validator found"),
    # the selection
    Case("unknown-participant-label", lambda c: c.add("--participant-label", "07"), 18, "{root}", "not found"),
    Case("filter-file-malformed", lambda c: filter_file(c, '{"ieeg": {"subject": "01",}}'), 64,
         "filter.json", "malformed JSON"),
    Case("filter-file-unknown-entity", lambda c: filter_file(c, '{"ieeg": {"subjekt": "01"}}'), 64,
         "filter.json", "unknown BIDS entities"),
    Case("filter-file-matches-nothing", lambda c: filter_file(c, '{"ieeg": {"task": "motor"}}'), 18,
         "{root}", "matches no iEEG recording"),
    Case("filter-file-missing", lambda c: c.add("--bids-filter-file", c.tmp / "absent.json"), 64,
         "absent.json", "not found"),
    # options and configuration
    Case("config-toml-malformed", lambda c: config_file(c, "nprocs = ["), 64, "options.toml", "malformed TOML"),
    Case("config-toml-unknown-option", lambda c: config_file(c, "n_procs = 2\n"), 64, "options.toml",
         "unknown option"),
    Case("config-toml-wrong-type", lambda c: config_file(c, 'nprocs = "two"\n'), 64, "options.toml", "nprocs"),
    Case("config-toml-bad-choice", lambda c: config_file(c, 'reference = "median"\n'), 64, "options.toml",
         "must be one of"),
    Case("config-toml-not-utf8", lambda c: config_file(c, 'model_label = "\xe9"\n'.encode("latin-1")), 64,
         "options.toml", "malformed TOML"),
    Case("unknown-analysis-level", lambda c: c.argv.__setitem__(2, "subject"), 17, "", "analysis level"),
    Case("bad-option-value", lambda c: c.add("--sampling-rate", "-5"), 64, "", "--sampling-rate"),
    # the output directory
    Case("output-inside-bids-dir", lambda c: out_to(c, c.root / "sourcedata" / "out"), 64, "sourcedata/out",
         "must not be inside"),   # only derivatives/ is allowed (tests/test_derivatives_layout.py)
    Case("output-is-a-file", lambda c: out_to(c, write(c.tmp / "taken", "x")), 64, "taken", "not a directory"),
    Case("output-not-creatable", lambda c: out_to(c, write(c.tmp / "file", "x") / "out"), 64, "file/out",
         "cannot create the output directory"),
    # model checkpoints
    Case("checkpoint-missing", lambda c: set_model(c, c.tmp / "absent.safetensors"), 65, "absent.safetensors",
         "not found"),
    Case("checkpoint-corrupt-safetensors", lambda c: set_model(c, write(c.tmp / "m.safetensors", b"\0" * 64)), 65,
         "m.safetensors", "not a readable safetensors file"),
    Case("checkpoint-corrupt-pth", lambda c: (set_model(c, write(c.tmp / "m.pth", b"PK\x03\x04 truncated")),
                                             c.add("--spectrogram", "stft")), 65, "m.pth", "not a readable"),
    Case("checkpoint-wrong-shape", lambda c: set_model(c, tiny_checkpoint(c, 20)), 65, "model20",
         "wrong input shape"),
    Case("checkpoint-weights-modified", corrupt_weights, 65, "model40/model.safetensors", "SHA-256"),
    Case("checkpoint-folder-without-weights", lambda c: set_model(c, (c.tmp / "empty").mkdir() or c.tmp / "empty"),
         65, "empty", "no model.safetensors"),
]

ONE_RECORDING = [
    # formats and data files
    Case("nwb-corrupt", lambda c: (write(c.root / "sub-01/ieeg/sub-01_task-rest_run-03_channels.tsv",
                                         (c.root / f"{RUN1}_channels.tsv").read_bytes()),
                                   write(c.root / "sub-01/ieeg/sub-01_task-rest_run-03_ieeg.nwb", b"\x89HDF\r\n")),
         1, "sub-01_task-rest_run-03_ieeg.nwb", "cannot be read", ("sub-01_task-rest_run-03",)),
    Case("edf-truncated", lambda c: truncate(c.root / f"{RUN2}_ieeg.edf", 0.6), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "truncated", ("sub-01_task-rest_run-02",)),
    Case("edf-header-garbage", lambda c: write(c.root / f"{RUN2}_ieeg.edf",
                                               b"\0" * 300 + (c.root / f"{RUN2}_ieeg.edf").read_bytes()[300:]),
         1, "sub-01_task-rest_run-02_ieeg.edf", "header", ("sub-01_task-rest_run-02",)),
    Case("edf-empty-file", lambda c: truncate(c.root / f"{RUN2}_ieeg.edf", 0), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "cannot be read", ("sub-01_task-rest_run-02",)),
    Case("brainvision-datafile-missing", lambda c: edit_text(c.root / f"{SUB2}_ieeg.vhdr",
                                                             "DataFile=sub-02_task-rest_ieeg.eeg", "DataFile=x.eeg"),
         1, "sub-02_task-rest_ieeg.vhdr", "x.eeg", ("sub-02_task-rest",)),
    Case("brainvision-eeg-deleted", lambda c: (c.root / f"{SUB2}_ieeg.eeg").unlink(), 1,
         "sub-02_task-rest_ieeg.vhdr", "does not exist", ("sub-02_task-rest",)),
    Case("brainvision-eeg-truncated", lambda c: truncate(c.root / f"{SUB2}_ieeg.eeg", 1001), 1,
         "sub-02_task-rest_ieeg.eeg", "truncated", ("sub-02_task-rest",)),
    # channels
    Case("channels-tsv-names-disagree", lambda c: edit_text(c.root / f"{RUN2}_channels.tsv", "LA3\t", "LX3\t"), 1,
         "sub-01_task-rest_run-02_channels.tsv", "do not match", ("sub-01_task-rest_run-02",)),
    Case("channels-tsv-duplicate-names", lambda c: edit_text(c.root / f"{RUN2}_channels.tsv", "LA3\t", "LA2\t"), 1,
         "sub-01_task-rest_run-02_channels.tsv", "duplicate channel name", ("sub-01_task-rest_run-02",)),
    Case("edf-duplicate-channel-names", lambda c: rename_channel_in_edf_header(c.root / f"{RUN2}_ieeg.edf",
                                                                               b"LA3", b"LA2"),
         1, "sub-01_task-rest_run-02_ieeg.edf", "duplicate channel name", ("sub-01_task-rest_run-02",)),
    Case("channels-tsv-missing", lambda c: (c.root / f"{RUN2}_channels.tsv").unlink(), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "no channels.tsv", ("sub-01_task-rest_run-02",)),
    Case("channels-tsv-not-utf8", lambda c: write(c.root / f"{RUN2}_channels.tsv", (c.root / f"{RUN2}_channels.tsv")
                                                  .read_bytes().replace(b"n/a", "\xe9".encode("latin-1"), 1)),
         1, "sub-01_task-rest_run-02_channels.tsv", "not UTF-8", ("sub-01_task-rest_run-02",)),
    Case("channels-tsv-ragged", lambda c: edit_text(c.root / f"{RUN2}_channels.tsv", "\nLA4\t", "\nLA4\tx\t", 1), 1,
         "sub-01_task-rest_run-02_channels.tsv", "ragged", ("sub-01_task-rest_run-02",)),
    Case("channels-tsv-no-type-column", lambda c: edit_tsv(c.root / f"{RUN2}_channels.tsv",
                                                           lambda t: t.drop(columns="type")),
         1, "sub-01_task-rest_run-02_channels.tsv", "missing required column(s) type", ("sub-01_task-rest_run-02",)),
    Case("all-channels-bad", lambda c: edit_tsv(c.root / f"{RUN2}_channels.tsv", set_column("status", "bad")), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "no usable SEEG/ECOG channel", ("sub-01_task-rest_run-02",)),
    Case("no-seeg-or-ecog-channel", lambda c: edit_tsv(c.root / f"{RUN2}_channels.tsv", set_column("type", "EEG")), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "no usable SEEG/ECOG channel", ("sub-01_task-rest_run-02",)),
    Case("all-channels-nan", extra_recording(every_seeg(lambda row: np.full_like(row, np.nan))), 1,
         "sub-03_task-rest_ieeg.vhdr", "NaN", ("sub-03_task-rest",)),
    Case("all-channels-flat", extra_recording(every_seeg(lambda row: np.zeros_like(row))), 1,
         "sub-03_task-rest_ieeg.vhdr", "flat", ("sub-03_task-rest",)),
    Case("all-channels-clipped", extra_recording(every_seeg(clip)), 1,
         "sub-03_task-rest_ieeg.vhdr", "clipped", ("sub-03_task-rest",)),
    # rate and length
    Case("sampling-rate-too-low", extra_recording(sfreq=256.0), 1, "sub-03_task-rest_ieeg.vhdr", "Nyquist 128 Hz",
         ("sub-03_task-rest",)),
    Case("sampling-rate-too-low-native", lambda c: (extra_recording(sfreq=256.0)(c),
                                                    c.add("--sampling-rate", "native")),
         1, "sub-03_task-rest_ieeg.vhdr", "200 Hz", ("sub-03_task-rest",)),
    Case("shorter-than-one-window", extra_recording(seconds=2.0), 1, "sub-03_task-rest_ieeg.vhdr",
         "shorter than one 5 s analysis window", ("sub-03_task-rest",)),
    # events
    Case("events-outside-recording", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t", "\n30.0\t", 1), 1,
         "sub-01_task-rest_run-02_events.tsv", "outside the recording", ("sub-01_task-rest_run-02",)),
    Case("events-negative-onset", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n1.0\t", "\n-1.0\t", 1), 1,
         "sub-01_task-rest_run-02_events.tsv", "outside the recording", ("sub-01_task-rest_run-02",)),
    Case("events-onset-not-a-number", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t", "\nsoon\t", 1),
         1, "sub-01_task-rest_run-02_events.tsv", "not a number", ("sub-01_task-rest_run-02",)),
    Case("events-ragged", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t", "\n3.0\t\t", 1), 1,
         "sub-01_task-rest_run-02_events.tsv", "ragged", ("sub-01_task-rest_run-02",)),
    Case("events-not-utf8", lambda c: write(c.root / f"{RUN2}_events.tsv", (c.root / f"{RUN2}_events.tsv")
                                            .read_bytes().replace(b"\ta\t", "\t\xe4\t".encode("latin-1"), 1)),
         1, "sub-01_task-rest_run-02_events.tsv", "not UTF-8", ("sub-01_task-rest_run-02",)),
    Case("events-no-onset-column", lambda c: edit_tsv(c.root / f"{RUN2}_events.tsv",
                                                      lambda t: t.rename(columns={"onset": "start"})),
         1, "sub-01_task-rest_run-02_events.tsv", "missing required column(s) onset", ("sub-01_task-rest_run-02",)),
    # other sidecars
    Case("coordsystem-json-malformed", lambda c: write(c.root / "sub-02/ieeg/sub-02_coordsystem.json", "[1,"), 1,
         "sub-02_coordsystem.json", "not valid JSON", ("sub-02_task-rest",)),
    Case("ieeg-json-malformed", lambda c: write(c.root / f"{RUN2}_ieeg.json", "{ not json"), 1,
         "sub-01_task-rest_run-02_ieeg.json", "not valid JSON", ("sub-01_task-rest_run-02",)),
    Case("electrodes-tsv-not-utf8", lambda c: write(c.root / "sub-02/ieeg/sub-02_electrodes.tsv",
                                                    (c.root / "sub-02/ieeg/sub-02_electrodes.tsv").read_bytes()
                                                    + "LZ1\t0\t0\t0\t\xe9\n".encode("latin-1")),
         1, "sub-02_electrodes.tsv", "not UTF-8", ("sub-02_task-rest",)),
    Case("electrodes-tsv-no-name-column", lambda c: edit_tsv(c.root / "sub-01/ieeg/sub-01_electrodes.tsv",
                                                             lambda t: t.rename(columns={"name": "label"})),
         1, "sub-01_electrodes.tsv", "missing required column(s) name",
         ("sub-01_task-rest_run-01", "sub-01_task-rest_run-02")),
]


def error_lines(err: str, code: int) -> list[str]:
    """The lines that report errors: ``bids-brainbert: error: ...`` for a refused run, or the indented lines of
    the failure summary for failed recordings."""
    if code == 1:
        summary = err.split("recording(s) failed:\n", 1)
        assert len(summary) == 2, err
        return [line.strip() for line in summary[1].splitlines() if line.startswith("  ")]
    return [line for line in err.splitlines() if line.startswith("bids-brainbert: error:")]


def no_leftovers(out: Path, stems: tuple[str, ...]) -> None:
    for stem in stems:
        assert not list(out.rglob(f"{stem}_*")), f"derivative files left for the broken {stem}"
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name], "temporary files left behind"


@pytest.mark.parametrize("case", WHOLE_RUN + ONE_RECORDING, ids=lambda c: c.id)
def test_bad_input_gets_one_clear_error(case: Case, tiny_dataset, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    ctx = Ctx(root=root, out=tmp_path / "out", tmp=tmp_path,
              argv=[str(root), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                    "-w", str(tmp_path / "work")])
    case.brk(ctx)
    existed = ctx.out.exists()
    code = main(ctx.argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unexpected error" not in err, err
    assert code == case.code, err
    lines = error_lines(err, code)
    expected_failures = len(case.broken) if code == 1 else 1
    assert len(lines) == expected_failures, err
    # besides the time-stamped log, stderr holds only these lines (and the failure summary's header)
    not_log = [line for line in err.splitlines() if not re.match(r"^\d\d:\d\d:\d\d \| ", line)]
    assert len(not_log) == expected_failures + (code == 1), err
    named = case.file.format(root=root)
    for line in lines:
        assert named in line and case.keyword in line, (named, case.keyword, line)
    if code != 1:  # the run is refused before anything is written
        assert ctx.out.exists() == existed, "an output directory was created for a refused run"
        assert not (root / "derivatives").exists()
        return
    # the broken recording(s) left nothing; every other recording was written completely
    no_leftovers(ctx.out, case.broken)
    good = [r for r in index_recordings(root) if r.stem_entities not in case.broken]
    assert len(good) == 3 - sum(s in ALL_STEMS for s in case.broken)
    for recording in good:
        assert is_complete(spectrogram_paths(ctx.out, recording, "superlet")), recording.path.name
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir()), "scratch left behind"


def test_corpus_is_large_and_covers_every_code():
    cases = WHOLE_RUN + ONE_RECORDING
    assert len(cases) >= 30 and len({c.id for c in cases}) == len(cases)
    assert {c.code for c in cases} == {1, 16, 17, 18, 64, 65}


def test_unusable_channels_are_left_out_with_the_reason(tiny_dataset, tmp_path, capsys):
    """One NaN, one flat and one clipped contact among six: the recording is written without them, and the
    sidecar and log say which were left out and why."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    data = tiny_signal(512 * 8, seed=9)
    data[1, 100:110] = np.nan                                   # LA2: a gap of NaN samples
    data[2] = 0.0                                               # LA3: flat
    data[3] = clip(data[3])                                     # LA4: saturated
    write_tiny_recording(root, "03", None, "BrainVision", data=data)
    out = tmp_path / "out"
    assert main([str(root), str(out), "participant", "--skip-bids-validation", "--participant-label", "03",
                 "--reference", "none"]) == 0
    err = capsys.readouterr().err
    recording = next(r for r in index_recordings(root) if r.subject == "03")
    paths = spectrogram_paths(out, recording, "superlet")
    channels = pd.read_csv(paths["channels"], sep="\t")
    assert channels["name"].tolist() == ["LA1", "LA5", "LA6"]
    left_out = json.loads(paths["sidecar"].read_text())["Preprocessing"]["ChannelsLeftOut"]
    assert "NaN" in left_out["LA2"] and "10 of 4096" in left_out["LA2"]
    assert left_out["LA3"] == "flat (constant signal)"
    assert "clipped" in left_out["LA4"] and left_out["ECG"].startswith("channel type ecg")
    assert np.isfinite(np.load(paths["data"])).all()
    warning = [line for line in err.splitlines() if "WARNING" in line and "without a usable signal" in line]
    assert len(warning) == 1 and all(name in warning[0] for name in ("LA2", "LA3", "LA4"))
    log = next(out.rglob("bids-brainbert.log")).read_text()
    assert "LA3 left out: flat" in log


def test_a_clean_recording_loses_no_channel(tiny_dataset, tmp_path):
    """The checks do not flag healthy signals: 16-bit EDF quantisation is not clipping."""
    out = tmp_path / "out"
    assert main([str(tiny_dataset), str(out), "participant", "--skip-bids-validation", "--participant-label", "01",
                 "--reference", "none"]) == 0
    for sidecar in out.rglob("*_spectrogram.json"):
        left_out = json.loads(sidecar.read_text())["Preprocessing"]["ChannelsLeftOut"]
        assert left_out == {"ECG": "channel type ecg not analysed"}
        channels = pd.read_csv(sidecar.with_name(sidecar.name.replace("_spectrogram.json", "_channels.tsv")),
                               sep="\t")
        assert channels["name"].tolist() == list(TINY_CHANNELS)


def test_error_lines_are_single_lines_naming_an_existing_path(tiny_dataset, tmp_path, capsys):
    """The failure summary names the file by its full path, on one line per recording."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    truncate(root / f"{RUN1}_ieeg.edf", 0.5)
    edit_text(root / f"{SUB2}_channels.tsv", "LA3\t", "LA2\t")
    assert main([str(root), str(tmp_path / "out"), "participant", "--skip-bids-validation"]) == 1
    lines = error_lines(capsys.readouterr().err, 1)
    assert len(lines) == 2
    for line in lines:
        path = re.match(r"^(\S+): ", line).group(1)
        assert Path(path).is_file(), line
