"""Hostile inputs (issue 12, security): checkpoints, symlinks, markup in names, hostile sizes, paths leaving the
dataset, work and output folders inside the input. Each class holds at least one case today's code got wrong."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bids_brainbert.cli.run import main
from conftest import tree_digest
from test_model import PublishedLayout, published_checkpoint


def run_cli(argv: list, capsys) -> tuple[int, str]:
    """Exit code and stderr of a run in this process (asserting there is no traceback)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("bids-brainbert: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def dataset(tiny_dataset, tmp_path) -> Path:
    """A private copy of the tiny dataset (three 8 s recordings)."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    return root


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


# ------------------------------------------------------------------------------- 1. hostile published checkpoint
def _placeholder(*args):
    return None


class _CallsPlaceholder:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return _placeholder, self.args


def hostile_pth(path: Path, function: str, *args) -> Path:
    """A torch zip checkpoint whose model_cfg unpickles as a call ``function(*args)`` named by a plain GLOBAL
    opcode (``module\nqualified.name``), the way a hand-made attack file names it."""
    import zipfile

    torch.save({"model_cfg": _CallsPlaceholder(*args)}, path)
    module, name = function.rsplit(":", 1)
    ours = f"c{__name__}\n_placeholder\n".encode()
    theirs = f"c{module}\n{name}\n".encode()
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for filename, data in entries:
            if filename.endswith("/data.pkl"):
                assert ours in data
                data = data.replace(ours, theirs)
            archive.writestr(filename, data)
    return path


class TestHostileCheckpoint:
    def test_omegaconf_callable_in_a_pth_is_never_called(self, dataset, tmp_path, capsys):
        import omegaconf  # noqa: F401 - the attack needs omegaconf importable (it is in the test extra)

        target = tmp_path / "site" / "sitecustomize.py"
        target.parent.mkdir()
        hostile = hostile_pth(tmp_path / "stft_large_pretrained.pth", "omegaconf.omegaconf:OmegaConf.save",
                              {"import os": "os.system('echo pwned')"}, str(target))
        assert hostile.stat().st_size < 2000
        before = files_under(tmp_path) - files_under(tmp_path / "ds")
        code, err = run_cli([dataset, tmp_path / "out", "participant", "--skip-bids-validation",
                             "--spectrogram", "stft", "--model", hostile], capsys)
        assert not target.exists(), "the checkpoint wrote a file while being unpickled"
        assert code == 65, err
        line = one_error_line(err)
        assert str(hostile) in line and "refusing" in line and "OmegaConf.save" in line
        assert files_under(tmp_path) - files_under(tmp_path / "ds") == before, "the run left a file"

    def test_published_layout_with_a_real_omegaconf_config_loads_without_omegaconf(self, tmp_path, monkeypatch):
        from omegaconf import OmegaConf

        from bids_brainbert.model.checkpoints import load_checkpoint

        cfg = OmegaConf.create({"name": "masked_tf_model", "hidden_dim": 32, "layer_dim_feedforward": 48,
                                "layer_activation": "gelu", "nhead": 4, "encoder_num_layers": 2, "input_dim": 8,
                                "extra": {"dropouts": [0.1, 0.2], "flag": True, "none": None}})
        path = tmp_path / "stft_large_pretrained.pth"
        reference = published_checkpoint(path, model_cfg=cfg)   # keys model, model_cfg, optim, scheduler
        for name in [n for n in sys.modules if n == "omegaconf" or n.startswith("omegaconf.")]:
            monkeypatch.setitem(sys.modules, name, None)        # the loader must not need (or import) it
        model, config, meta = load_checkpoint(path)
        assert (config.d_model, config.n_heads, config.n_layers) == (32, 4, 2)
        assert meta["model_cfg"]["extra"] == {"dropouts": [0.1, 0.2], "flag": True, "none": None}
        x = torch.randn(1, 10, 8)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x)[1], atol=1e-5, rtol=1e-5)
        assert "omegaconf" not in str(torch.serialization.get_safe_globals())

    def test_omegaconf_enum_or_path_nodes_are_refused(self, tmp_path):
        from omegaconf import OmegaConf

        from bids_brainbert.errors import CheckpointError
        from bids_brainbert.model.checkpoints import load_checkpoint

        cfg = OmegaConf.create({"nhead": 4, "where": Path("/etc")})   # a PathNode references pathlib
        path = tmp_path / "path_node.pth"
        published_checkpoint(path, model_cfg=cfg)
        with pytest.raises(CheckpointError, match="refusing") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------------ 3. markup in reports
HOSTILE = {
    "session": "<img src=x onerror=alert(1)>",
    "channel": "<script>alert(2)</script>",
    "status": "<iframe src=javascript:alert(3)>",
    "trial_type": "<svg onload=alert(4)>",
}


def plant_hostile_names(root: Path) -> None:
    """A channel, a bad-channel description and a trial type of sub-02 with markup (table cells are free text no
    BIDS label check covers)."""
    ieeg = root / "sub-02" / "ieeg"
    for name in ("sub-02_task-rest_ieeg.vhdr", "sub-02_task-rest_channels.tsv", "sub-02_electrodes.tsv"):
        path = ieeg / name
        path.write_text(path.read_text(encoding="utf-8").replace("LA3", HOSTILE["channel"]), encoding="utf-8")
    channels = ieeg / "sub-02_task-rest_channels.tsv"
    lines = channels.read_text(encoding="utf-8").splitlines()
    lines = [line.replace("\tgood\tn/a", f"\tbad\t{HOSTILE['status']}") if line.startswith("ECG") else line
             for line in lines]
    channels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    events = ieeg / "sub-02_task-rest_events.tsv"
    events.write_text(events.read_text(encoding="utf-8").replace("\ta\t", f"\t{HOSTILE['trial_type']}\t"),
                      encoding="utf-8")


class TestReportsEscapeDatasetText:
    def test_hostile_names_land_escaped_in_the_subject_report(self, dataset, tmp_path, capsys):
        import html

        plant_hostile_names(dataset)
        out = tmp_path / "out"
        code, err = run_cli([dataset, out, "participant", "--skip-bids-validation", "--participant-label", "02",
                             "--spectrogram", "stft", "--reference", "car"], capsys)
        assert code == 0, err
        report = (out / "sub-02.html").read_text(encoding="utf-8")
        for text in HOSTILE.values():
            assert text not in report
        # the names are there, as text
        for key in ("channel", "status"):
            assert html.escape(HOSTILE[key]) in report, key

    def test_a_session_folder_named_with_markup_is_refused_before_any_report(self, dataset, tmp_path, capsys):
        # its files' own session entity (none) disagrees with the folder: discovery refuses it (16), so the
        # folder's name never reaches a report
        ieeg = dataset / "sub-02" / "ieeg"
        shutil.copytree(ieeg, dataset / "sub-02" / f"ses-{HOSTILE['session']}" / "ieeg")
        out = tmp_path / "out"
        code, err = run_cli([dataset, out, "participant", "--skip-bids-validation", "--participant-label", "02",
                             "--spectrogram", "stft", "--reference", "car"], capsys)
        assert code == 16, err
        assert "does not match the folder" in err and len(err.strip().splitlines()) == 1
        assert not (out / "sub-02.html").exists()

    def test_every_builder_escapes_what_it_is_given(self):
        import pandas as pd

        from bids_brainbert.reports.html import Section, heading, image, paragraph, preformatted, render, table

        hostile = '"><script>alert(5)</script>'
        page = render(hostile, [Section(hostile, heading(hostile) + paragraph(hostile, "note")
                                        + preformatted(hostile) + image(b"png", hostile)
                                        + table(pd.DataFrame({hostile: [hostile]})))], subtitle=hostile)
        assert "<script>" not in page
        # title, h1, subtitle, nav, h2, h3, p, pre, img alt, table header and cell
        assert page.count("&gt;&lt;script&gt;alert(5)") == 11


# ----------------------------------------------------------------------- 2. and 4. symbolic links in the output
DERIVATIVE_NAMES = ("sub-01_task-rest_run-01_desc-stft_spectrogram.npy",
                    "sub-01_task-rest_run-01_desc-stft_spectrogram.json",
                    "sub-01_task-rest_run-01_desc-stft_channels.tsv",
                    "sub-01_task-rest_run-01_desc-stft_channels.json")


class TestSymlinksInTheOutput:
    def test_clean_up_never_deletes_through_a_linked_folder(self, dataset, tmp_path, capsys):
        victim = tmp_path / "victim"
        victim.mkdir()
        for name in DERIVATIVE_NAMES:
            (victim / name).write_text("precious\n")
        out = tmp_path / "out"
        (out / "sub-01").mkdir(parents=True)
        (out / "sub-01" / "ieeg").symlink_to(victim, target_is_directory=True)
        code, err = run_cli([dataset, out, "participant", "--skip-bids-validation", "--participant-label", "01",
                             "--spectrogram", "stft"], capsys)
        assert code == 1, err
        assert "refusing to write outside the output directory" in err
        assert sorted(p.name for p in victim.iterdir()) == sorted(DERIVATIVE_NAMES)
        assert all((victim / name).read_text() == "precious\n" for name in DERIVATIVE_NAMES)

    @pytest.mark.parametrize("name", [".bidsignore", "dataset_description.json"])
    def test_a_linked_dataset_file_is_refused_and_its_target_never_read(self, name, dataset, tmp_path, capsys):
        secret = tmp_path / "secret.txt"
        secret.write_text("api-token-1234\n")
        out = tmp_path / "out"
        out.mkdir()
        (out / name).symlink_to(secret)
        code, err = run_cli([dataset, out, "participant", "--skip-bids-validation", "--spectrogram", "stft"],
                            capsys)
        assert code == 64, err
        line = one_error_line(err)
        assert str(out / name) in line and "symbolic link" in line
        assert (out / name).is_symlink() and secret.read_text() == "api-token-1234\n"
        assert not any("api-token" in p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()
                       and not p.is_symlink())
        assert sorted(p.name for p in out.iterdir()) == [name], "a refused run wrote into the output"

    def test_a_fifo_as_bidsignore_is_refused_not_read(self, dataset, tmp_path, capsys):
        import os

        out = tmp_path / "out"
        out.mkdir()
        os.mkfifo(out / ".bidsignore")   # reading it would block for ever
        code, err = run_cli([dataset, out, "participant", "--skip-bids-validation", "--spectrogram", "stft"],
                            capsys)
        assert code == 64, err
        assert str(out / ".bidsignore") in one_error_line(err) and "not a regular file" in err

    def test_a_derivative_file_linked_outside_is_refused(self, dataset, tmp_path, capsys):
        out = tmp_path / "out"
        argv = [dataset, out, "participant", "--skip-bids-validation", "--participant-label", "01", "--spectrogram",
                "stft"]
        assert run_cli(argv, capsys)[0] == 0
        folder = out / "sub-01" / "ieeg"
        elsewhere = tmp_path / "elsewhere.json"
        sidecar = folder / DERIVATIVE_NAMES[1]
        shutil.copy(sidecar, elsewhere)
        sidecar.unlink()
        sidecar.symlink_to(elsewhere)   # a complete-looking derivative whose sidecar lives outside the output
        before = elsewhere.read_bytes()
        code, err = run_cli(argv + ["--overwrite"], capsys)
        assert code == 1, err
        failures = err.split("recording(s) failed:\n", 1)[1].strip().splitlines()
        assert len(failures) == 1 and str(sidecar) in failures[0] and "refusing to write outside" in failures[0]
        assert elsewhere.read_bytes() == before   # the link may go (it is inside), never its target


# ----------------------------------------------------------------- 7. work and output folders inside the input
class TestNothingWrittenInsideTheInput:
    def test_work_dir_inside_the_dataset_is_refused(self, dataset, tmp_path, capsys):
        before = tree_digest(dataset)
        work = dataset / "sub-01" / "scratch"
        code, err = run_cli([dataset, tmp_path / "out", "participant", "--skip-bids-validation", "-w", work],
                            capsys)
        assert code == 64, err
        line = one_error_line(err)
        assert str(work) in line and "work directory" in line
        assert not work.exists() and tree_digest(dataset) == before
        assert not (tmp_path / "out").exists()

    def test_output_through_a_bind_mount_of_the_input_is_refused(self, dataset, tmp_path):
        mount = tmp_path / "mnt"
        mount.mkdir()
        before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
        script = (f"mount --bind {dataset} {mount} && exec {sys.executable} -m bids_brainbert {dataset} "
                  f"{mount / 'bb-out'} participant --skip-bids-validation")
        # a private user and mount namespace: the bind mount needs no privileges and vanishes with the process
        result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                                capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300)
        assert result.returncode == 64, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "must not be inside the BIDS directory" in lines[0], result.stderr
        assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before   # bb-out never made


# ------------------------------------------------------------------------------------------- 5. hostile sizes
def tiny_model_dir(folder: Path) -> Path:
    from bids_brainbert.model.checkpoints import save_checkpoint
    from bids_brainbert.model.encoder import BrainBertPretrainModel, ModelConfig

    model = BrainBertPretrainModel(ModelConfig(n_freqs=40, d_model=8, n_layers=1, n_heads=2, d_ff=16))
    return save_checkpoint(folder, model)


def edit_config(folder: Path, change) -> Path:
    import json

    path = folder / "config.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    return path


def sparse_safetensors(path: Path, name: str, n_floats: int) -> Path:
    """A safetensors file declaring one float32 tensor of ``n_floats`` values, the data a hole (sparse file)."""
    import json
    import struct

    header = json.dumps({name: {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 4 * n_floats)
    return path


HOSTILE_CONFIGS = {
    "d_model-huge": (lambda m: m["model"].update(d_model=10**6, n_heads=2), "exceed the bound"),
    "max_frames-huge": (lambda m: m["model"].update(max_frames=10**9), "max_frames"),
    "format_version-string": (lambda m: m.update(format_version="1"), "format_version"),
    "format_version-float": (lambda m: m.update(format_version=1.5), "format_version"),
    "model-a-list": (lambda m: m.update(model=[1, 2]), "'model' must be an object"),
    "dropout-string": (lambda m: m["model"].update(dropout="lots"), "dropout"),
    "activation-a-list": (lambda m: m["model"].update(activation=["gelu"]), "activation"),
    "layer_norm_eps-negative": (lambda m: m["model"].update(layer_norm_eps=-1.0), "layer_norm_eps"),
    "format-foreign": (lambda m: (m.clear(), m.update({"not": "ours"})), "not a bids-brainbert-model config"),
}


class TestHostileSizesAndFields:
    @pytest.mark.parametrize("case", sorted(HOSTILE_CONFIGS))
    def test_config_json_fields_are_validated_before_allocating(self, case, dataset, tmp_path, capsys):
        change, keyword = HOSTILE_CONFIGS[case]
        config_path = edit_config(tiny_model_dir(tmp_path / "model"), change)
        code, err = run_cli([dataset, tmp_path / "out", "participant", "--skip-bids-validation",
                             "--model", tmp_path / "model"], capsys)
        assert code == 65, err
        line = one_error_line(err)
        assert str(config_path) in line and keyword in line, line
        assert not (tmp_path / "out").exists()

    def test_a_huge_sparse_weights_file_is_refused_naming_it(self, dataset, tmp_path, capsys):
        folder = tiny_model_dir(tmp_path / "model")
        edit_config(folder, lambda m: m.pop("weights_sha256"))
        weights = sparse_safetensors(folder / "model.safetensors", "encoder.input_proj.weight", 2 * 1024**3)
        assert weights.stat().st_size > 8 * 1024**3
        code, err = run_cli([dataset, tmp_path / "out", "participant", "--skip-bids-validation",
                             "--model", folder], capsys)
        assert code == 65, err
        line = one_error_line(err)
        assert str(weights) in line and "bytes" in line, line

    def test_weights_of_hostile_shapes_are_refused_before_they_are_read(self, tmp_path):
        from bids_brainbert.errors import CheckpointError
        from bids_brainbert.model.checkpoints import load_checkpoint

        folder = tiny_model_dir(tmp_path / "model")
        (folder / "config.json").unlink()   # the header's config is used
        import json

        from safetensors.torch import save_file
        save_file({"encoder.input_proj.weight": torch.zeros(3, 3)}, str(folder / "model.safetensors"),
                  metadata={"model_config": json.dumps({"n_freqs": 40, "d_model": 8, "n_layers": 1, "n_heads": 2,
                                                        "d_ff": 16})})
        with pytest.raises(CheckpointError, match="weights do not match") as info:
            load_checkpoint(folder)
        assert str(folder / "model.safetensors") in str(info.value)
        save_file({}, str(folder / "model.safetensors"), metadata={"model_config": "{not json"})
        with pytest.raises(CheckpointError, match="not valid JSON"):
            load_checkpoint(folder)

    @pytest.mark.parametrize("model_cfg,keyword", [({"nhead": "four"}, "nhead"), ({"nhead": [4]}, "nhead"),
                                                   ({"nhead": 4, "hidden_dim": {"a": 1}}, "hidden_dim"),
                                                   ({"nhead": 4, "layer_activation": 7}, "activation")])
    def test_published_model_cfg_garbage_is_one_line(self, model_cfg, keyword, tmp_path):
        from bids_brainbert.errors import CheckpointError
        from bids_brainbert.model.checkpoints import load_checkpoint

        path = tmp_path / "garbage.pth"
        torch.save({"model": PublishedLayout().state_dict(), "model_cfg": model_cfg}, path)
        with pytest.raises(CheckpointError, match=keyword) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)

    def test_a_checkpoint_planted_in_the_output_is_refused_every_run(self, dataset, tmp_path, capsys):
        import json

        out = tmp_path / "out"
        checkpoints = out / "models" / "desc-brainbert" / "checkpoints"
        planted = checkpoints / "step-00000001"
        tiny_model_dir(planted)
        for name in ("training_state.json", "training_state.safetensors"):
            (planted / name).write_text("{}")
        config_path = edit_config(planted, lambda m: m["model"].update(d_model=2**20, n_heads=2))
        for _ in range(2):
            code, err = run_cli([dataset, out, "participant", "--skip-bids-validation"], capsys)
            assert code == 65, err
            line = one_error_line(err)
            assert str(config_path) in line and "exceed the bound" in line
        # a pointer leading out of the checkpoints folder is not followed
        outside = tiny_model_dir(tmp_path / "outside")
        for name in ("training_state.json", "training_state.safetensors"):
            (outside / name).write_text("{}")
        shutil.rmtree(planted)
        (checkpoints / "latest.json").write_text(json.dumps({"checkpoint": "../../../../outside", "step": 1}))
        from bids_brainbert.training import latest_checkpoint

        assert latest_checkpoint(out / "models" / "desc-brainbert") is None


# ------------------------------------------------------------------------------- 6. paths leaving the dataset
class TestPathsLeavingTheDataset:
    def test_links_out_of_the_dataset_are_followed_with_a_warning_naming_them(self, dataset, tmp_path, capsys):
        storage = tmp_path / "storage"
        storage.mkdir()
        links = {}
        # a data file, a sidecar and a whole subject folder kept elsewhere and linked in
        for relative in ("sub-01/ieeg/sub-01_task-rest_run-01_ieeg.edf", "sub-01/ieeg/sub-01_task-rest_run-02_events.tsv",
                         "sub-02"):
            link = dataset / relative
            target = storage / link.name
            shutil.move(link, target)
            link.symlink_to(target, target_is_directory=target.is_dir())
            links[link] = target
        out = tmp_path / "out"
        code, err = run_cli([dataset, out, "participant", "--skip-bids-validation", "--spectrogram", "stft"],
                            capsys)
        assert code == 0, err
        warnings = [line for line in err.splitlines() if "WARNING" in line and "symbolic link" in line]
        for link, target in links.items():
            named = [line for line in warnings if f"{link}: symbolic link to {target}" in line]
            assert len(named) == 1, (link, warnings)
            assert "outside the dataset" in named[0]
        assert len(list(out.rglob("*_spectrogram.npy"))) == 3
        assert sorted(p.name for p in storage.iterdir()) == sorted(t.name for t in links.values())

    @pytest.mark.parametrize("reference", ["/etc/hostname", "../../../secret.eeg", "..\\\\secret.eeg"])
    def test_a_brainvision_header_pointing_elsewhere_fails_its_recording(self, reference, dataset, tmp_path, capsys):
        vhdr = dataset / "sub-02" / "ieeg" / "sub-02_task-rest_ieeg.vhdr"
        vhdr.write_text(vhdr.read_text(encoding="utf-8").replace("DataFile=sub-02_task-rest_ieeg.eeg",
                                                                 f"DataFile={reference}"), encoding="utf-8")
        out = tmp_path / "out"
        code, err = run_cli([dataset, out, "participant", "--skip-bids-validation", "--spectrogram", "stft"],
                            capsys)
        assert code == 1, err
        failures = err.split("recording(s) failed:\n", 1)[1].strip().splitlines()
        assert len(failures) == 1 and str(vhdr) in failures[0] and "DataFile= must name a file beside" in failures[0]
        assert not list(out.rglob("sub-02_*_spectrogram.*"))
        assert len(list(out.rglob("sub-01_*_spectrogram.npy"))) == 2

    def test_a_bad_line_of_a_label_file_is_named_not_echoed(self, dataset, tmp_path, capsys):
        labels = tmp_path / "labels.txt"
        labels.write_text("sub-01\nsub-02\npassword=hunter2\n")
        code, err = run_cli([dataset, tmp_path / "out", "participant", "--skip-bids-validation",
                             "--participant-label", labels], capsys)
        assert code == 64, err
        line = one_error_line(err)
        assert str(labels) in line and "line 3" in line
        assert "hunter2" not in err
        assert not (tmp_path / "out").exists()


class TestHostileTrainingState:
    @pytest.mark.parametrize("doc", [[1, 2], {"optimizer": {"class": "AdamW", "param_groups": "x"}, "state": {}},
                                     {"optimizer": {"class": "AdamW", "param_groups": [{}], "scalars": {"a": {}}}}])
    def test_a_malformed_training_state_is_one_line_naming_it(self, doc, tmp_path):
        import json

        from bids_brainbert.errors import CheckpointError
        from bids_brainbert.model.checkpoints import load_training_state, save_checkpoint
        from bids_brainbert.model.encoder import BrainBertPretrainModel, ModelConfig

        model = BrainBertPretrainModel(ModelConfig(n_freqs=8, d_model=8, n_layers=1, n_heads=2, d_ff=16))
        optimizer = torch.optim.AdamW(model.parameters())
        folder = save_checkpoint(tmp_path / "ckpt", model, optimizer=optimizer, training_state={"step": 1})
        (folder / "training_state.json").write_text(json.dumps(doc))
        with pytest.raises(CheckpointError) as info:
            load_training_state(folder, torch.optim.AdamW(model.parameters()))
        assert str(folder / "training_state.json") in str(info.value) and "\n" not in str(info.value)
