"""The SLURM job scripts of examples/hpc run the commands the README describes.

SLURM, Apptainer and GPUs are not available here: the scripts run under bash with stand-ins for ``apptainer``,
``sbatch`` and ``nvidia-smi`` that record their arguments. What is checked is ours: which subject a task picks,
the bind mounts, and that the bids-brainbert command line they build is valid and selects the right recordings.
"""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.cli.run import main, parse_config

HPC = Path(__file__).resolve().parents[1] / "examples" / "hpc"


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    """An executable ``name`` that appends its arguments (JSON) to $RECORD, then runs ``body``."""
    path = bin_dir / name
    path.write_text("#!/bin/bash\n"
                    f'printf "%s\\n" "$(python3 -c \'import json,sys; print(json.dumps([sys.argv[1:], "{name}"]))\' '
                    '"$@")" >> "$RECORD"\n' + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def hpc_env(tmp_path, demo_dataset):
    root, _ = demo_dataset
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in(bin_dir, "apptainer", "exit 0")
    stand_in(bin_dir, "nvidia-smi", 'printf "GPU 0: H100\\nGPU 1: H100\\n"')
    stand_in(bin_dir, "sbatch", "echo 4242")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(tmp_path / "calls.jsonl"),
           "SIF": str(tmp_path / "bids-brainbert.sif"), "BIDS_DIR": str(root), "OUT_DIR": str(tmp_path / "out"),
           "SCRATCH_DIR": str(tmp_path / "scratch")}
    (tmp_path / "scratch").mkdir()
    return env, root, tmp_path


def calls(tmp_path: Path) -> list[tuple[list[str], str]]:
    return [tuple(json.loads(line)) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def app_arguments(argv: list[str], env: dict) -> list[str]:
    """The bids-brainbert arguments after the image, with the container paths mapped back to the host's."""
    after_image = argv[argv.index(env["SIF"]) + 1:]
    if after_image[0] == "torchrun":
        after_image = after_image[after_image.index("bids_brainbert") + 1:]
    mapping = {"/data": env["BIDS_DIR"], "/out": env["OUT_DIR"]}
    return [mapping.get(word, word) for word in after_image]


def test_list_subjects(hpc_env):
    env, root, _ = hpc_env
    done = subprocess.run([str(HPC / "list_subjects.sh"), str(root)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == sorted({r.subject for r in index_recordings(root)})


@pytest.mark.parametrize("task", [1, 3])
def test_participant_task_runs_its_subject(hpc_env, task, capsys):
    env, root, tmp_path = hpc_env
    subjects = tmp_path / "subjects.txt"
    subprocess.run([str(HPC / "list_subjects.sh"), str(root)], stdout=subjects.open("w"), check=True)
    env.update(SUBJECTS=str(subjects), SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID="77",
               SLURM_CPUS_PER_TASK="4")
    subprocess.run(["bash", str(HPC / "participant.sbatch")], env=env, check=True)
    (argv, tool), = calls(tmp_path)
    assert tool == "apptainer" and argv[:3] == ["run", "--cleanenv", "--no-home"]
    assert f"{root}:/data:ro" in argv and f"{env['OUT_DIR']}:/out" in argv
    scratch_binds = [a for a in argv if a.startswith(env["SCRATCH_DIR"])]
    assert len(scratch_binds) == 1 and scratch_binds[0].endswith(":/tmp")
    assert not list(Path(env["SCRATCH_DIR"]).iterdir()), "the task's scratch directory was not removed"
    arguments = app_arguments(argv, env)
    config = parse_config(arguments)
    subject = subjects.read_text().split()[task - 1]
    assert config.analysis_level == "participant" and config.participant_label == [subject]
    assert config.nprocs == 4 and str(config.work_dir) == "/tmp/work"
    # the command selects exactly that subject's recordings
    assert main(arguments + ["--dry-run", "--skip-bids-validation"]) == 0
    expected = [r for r in index_recordings(root) if r.subject == subject]
    assert f"would process {len(expected)} recording(s)" in capsys.readouterr().out


def test_participant_task_beyond_the_list_fails(hpc_env):
    env, root, tmp_path = hpc_env
    subjects = tmp_path / "subjects.txt"
    subjects.write_text("01\n")
    env.update(SUBJECTS=str(subjects), SLURM_ARRAY_TASK_ID="2")
    done = subprocess.run(["bash", str(HPC / "participant.sbatch")], env=env, capture_output=True, text=True)
    assert done.returncode == 64 and "no subject on line 2" in done.stderr


def test_group_job_uses_torchrun_on_every_gpu(hpc_env):
    env, root, tmp_path = hpc_env
    env.update(SLURM_JOB_ID="78", SLURM_CPUS_PER_TASK="16")
    subprocess.run(["bash", str(HPC / "group.sbatch")], env=env, check=True)
    apptainer = [argv for argv, tool in calls(tmp_path) if tool == "apptainer"]
    (argv,) = apptainer
    assert argv[:4] == ["exec", "--cleanenv", "--no-home", "--nv"]
    image_at = argv.index(env["SIF"])
    assert argv[image_at + 1:image_at + 7] == ["torchrun", "--standalone", "--nproc-per-node", "2", "-m",
                                               "bids_brainbert"]
    config = parse_config(app_arguments(argv, env))
    assert config.analysis_level == "group" and config.nprocs == 8 and config.device == "cuda"


def test_submit_queues_the_array_then_the_group_level(hpc_env):
    env, root, tmp_path = hpc_env
    env["SUBJECTS"] = str(tmp_path / "subjects.txt")
    done = subprocess.run(["bash", str(HPC / "submit.sh")], env=env, capture_output=True, text=True, check=True)
    n_subjects = len({r.subject for r in index_recordings(root)})
    (array, _), (group, _) = calls(tmp_path)
    assert f"--array=1-{n_subjects}" in array and array[-1].endswith("participant.sbatch")
    assert "--dependency=afterok:4242" in group and group[-1].endswith("group.sbatch")
    assert f"({n_subjects} subjects)" in done.stdout
