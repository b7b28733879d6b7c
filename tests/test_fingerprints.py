"""Fingerprints: a re-run recomputes exactly the derivatives whose settings, inputs or model changed, and nothing
for settings that shape nothing; outputs of a version without fingerprints are recomputed once, with a notice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bids_brainbert.cli.run import main
from bids_brainbert.fingerprints import fingerprint, stale_reason, tree_sha256
from bids_brainbert.model import build_model, save_checkpoint
from conftest import write_tiny_recording

BASE = ["participant", "--skip-bids-validation", "--random-seed", "7", "--embedding-window-s", "2"]
SIZE = {"n_freqs": 40, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 48}
SPECTROGRAM = {"spectrogram"}
EMBEDDINGS = {"windows", "events", "randomWindows", "randomEvents"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One 8 s recording with events, two models of the same architecture, and a first run with the first."""
    root = tmp_path_factory.mktemp("fingerprints")
    raw = root / "rawdata"
    write_tiny_recording(raw, "01", "01", "EDF", seed=1)
    models = {seed: save_checkpoint(root / f"model{seed}", build_model(SIZE, seed=seed)) for seed in (3, 4)}
    out = root / "out"
    assert main([str(raw), str(out), *BASE, "--model", str(models[3])]) == 0
    return raw, out, models


def category(name: str) -> str | None:
    """Which derivative a file belongs to (the spectrogram's channel table goes with it)."""
    if "_desc-superlet_" in name or "_desc-stft_" in name:
        return "spectrogram"
    for label, kind in (("brainbertRandomEvents", "randomEvents"), ("brainbertRandom", "randomWindows"),
                        ("brainbertEvents", "events"), ("brainbert", "windows")):
        if f"_desc-{label}_" in name:
            return kind
    return None


def state(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every derivative file: a file renamed into place has a new inode."""
    return {p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in out.rglob("*") if p.is_file() and category(p.name)}


def rerun(setup, tmp_path, *args: str, model: int = 3, spectrogram: str | None = None) -> tuple[set, set, str]:
    """Copy the first run's output, run again with ``args``: (categories rewritten, categories kept, log)."""
    raw, out, models = setup
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    if spectrogram:   # start from outputs of that front end as well
        assert main([str(raw), str(copy), *BASE, "--model", str(models[model]), "--spectrogram", spectrogram]) == 0
    before = state(copy)
    assert main([str(raw), str(copy), *BASE, "--model", str(models[model]), *args]) == 0
    after = state(copy)
    changed = {category(Path(name).name) for name in after if before.get(name) != after[name]}
    kept = {category(Path(name).name) for name in after if before.get(name) == after[name]}
    logs = "\n".join(p.read_text() for p in copy.rglob("bids-brainbert.log"))
    return changed, kept - changed, logs


@pytest.mark.parametrize("args", [
    ["--superlet-freq-min", "0.5"], ["--superlet-freq-max", "150"], ["--superlet-base-cycles", "2"],
    ["--superlet-order-min", "2"], ["--superlet-order-max", "20"], ["--superlet-decimation", "32"],
    ["--superlet-mode", "multiplicative"], ["--superlet-definition", "moca"],
    ["--reference", "car"], ["--sampling-rate", "1024"], ["--line-noise-quality", "10"], ["--no-line-noise"],
    ["--line-noise-max-hz", "100"], ["--laplacian-min-neighbours", "1"],
], ids=lambda args: " ".join(args))
def test_a_preprocessing_or_superlet_setting_recomputes_the_spectrogram_and_its_embeddings(setup, tmp_path, args):
    changed, kept, logs = rerun(setup, tmp_path, *args)
    assert changed == SPECTROGRAM | EMBEDDINGS
    assert "computed with other settings or inputs" in logs


def test_an_stft_setting_recomputes_the_stft_spectrogram_and_its_embeddings(setup, tmp_path):
    changed, kept, logs = rerun(setup, tmp_path, "--spectrogram", "stft", "--stft-nperseg", "512",
                                "--stft-noverlap", "462", spectrogram="stft")
    assert changed == SPECTROGRAM | EMBEDDINGS
    assert "stft.nperseg 400 -> 512" in logs and "stft.noverlap 350 -> 462" in logs


@pytest.mark.parametrize("args, affected", [
    (["--embedding-layer", "1"], EMBEDDINGS),
    (["--embedding-window-s", "3"], EMBEDDINGS),
    (["--embedding-middle-frames", "4"], EMBEDDINGS),
    (["--embedding-pooling", "mean"], {"events", "randomEvents"}),
    (["--decoding-offset-s", "0.2"], {"events", "randomEvents"}),
    (["--embedding-window-pooling", "middle"], {"windows", "randomWindows"}),
    (["--embedding-stride-s", "1"], {"windows", "randomWindows"}),
    (["--embedding-windowing", "brainbert"], EMBEDDINGS),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_an_embedding_setting_recomputes_only_the_embeddings_it_shapes(setup, tmp_path, args, affected):
    changed, kept, logs = rerun(setup, tmp_path, *args)
    assert changed == affected
    assert SPECTROGRAM <= kept


def test_another_model_under_the_same_label_recomputes_its_embeddings_only(setup, tmp_path):
    """The random-weights control has the same architecture and seed: it is not recomputed."""
    changed, kept, logs = rerun(setup, tmp_path, model=4)
    assert changed == {"windows", "events"}
    assert {"spectrogram", "randomWindows", "randomEvents"} <= kept
    assert "model.Sha256" in logs


@pytest.mark.parametrize("args", [["--nprocs", "2"], ["-v"], ["--channel-batch-size", "1"],
                                  ["--embedding-batch-size", "3"], []], ids=lambda args: " ".join(args) or "same")
def test_a_setting_that_shapes_nothing_recomputes_nothing(setup, tmp_path, args):
    changed, kept, logs = rerun(setup, tmp_path, *args)
    assert changed == set() and kept == SPECTROGRAM | EMBEDDINGS
    assert "recomputing" not in logs


def test_overwrite_recomputes_everything(setup, tmp_path):
    changed, _, _ = rerun(setup, tmp_path, "--overwrite")
    assert changed == SPECTROGRAM | EMBEDDINGS


def test_outputs_without_fingerprints_are_recomputed_once_with_a_notice(setup, tmp_path):
    """As an earlier version left them: the spectrogram is recomputed (its numbers are the same, so its
    embeddings are not), the embeddings of the other sidecars too; a second run then skips everything."""
    raw, out, models = setup
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    for sidecar in copy.rglob("*_desc-superlet_spectrogram.json"):
        record = json.loads(sidecar.read_text())
        del record["Fingerprint"]
        sidecar.write_text(json.dumps(record))
    before = state(copy)
    assert main([str(raw), str(copy), *BASE, "--model", str(models[3])]) == 0
    after = state(copy)
    assert {category(Path(n).name) for n in after if before[n] != after[n]} == SPECTROGRAM
    logs = "\n".join(p.read_text() for p in copy.rglob("bids-brainbert.log"))
    assert logs.count("no fingerprint in its sidecar (written by an earlier version)") == 1
    again = state(copy)
    assert main([str(raw), str(copy), *BASE, "--model", str(models[3])]) == 0
    assert state(copy) == again


def test_an_input_file_that_changes_recomputes_its_derivatives(setup, tmp_path):
    """A sidecar the loader reads (channels.tsv: a channel marked bad) is an input of the spectrogram."""
    raw, out, models = setup
    raw_copy = tmp_path / "rawdata"
    shutil.copytree(raw, raw_copy)
    copy = tmp_path / "out"
    assert main([str(raw_copy), str(copy), *BASE, "--model", str(models[3])]) == 0
    channels = next(raw_copy.rglob("*_channels.tsv"))
    channels.write_text(channels.read_text().replace("\tgood", "\tbad", 1))
    before = state(copy)
    assert main([str(raw_copy), str(copy), *BASE, "--model", str(models[3])]) == 0
    after = state(copy)
    assert {category(Path(n).name) for n in after if before[n] != after[n]} == SPECTROGRAM | EMBEDDINGS
    logs = "\n".join(p.read_text() for p in copy.rglob("bids-brainbert.log"))
    assert f"{channels.name} changed" in logs


def test_folder_inputs_are_hashed_by_content(tmp_path):
    """A MEF3 session is a folder: any file inside it changes its hash, its names too."""
    session = tmp_path / "sub-01_task-x_ieeg.mefd"
    (session / "ch1.timd").mkdir(parents=True)
    (session / "ch1.timd" / "seg.tdat").write_bytes(b"abc")
    first = tree_sha256(session)
    (session / "ch1.timd" / "seg.tdat").write_bytes(b"abd")
    second = tree_sha256(session)
    (session / "ch1.timd" / "seg.tdat").rename(session / "ch1.timd" / "seg2.tdat")
    assert len({first, second, tree_sha256(session)}) == 3


def test_the_reason_names_what_changed():
    old = fingerprint("spectrogram", {"superlet": {"n_freqs": 40}}, {"a_ieeg.edf": "1"})
    new = fingerprint("spectrogram", {"superlet": {"n_freqs": 20}}, {"a_ieeg.edf": "2"})
    assert stale_reason(old, old) is None
    assert stale_reason(old, new) == ("computed with other settings or inputs: a_ieeg.edf changed; "
                                      "superlet.n_freqs 40 -> 20")
    assert "earlier version" in stale_reason(None, new)
