"""The Dockerfile and singularity.def, parsed with spython, describe the same image; the environment they set is
what the app reads (container provenance, writable caches) and leaves thread counts to --nprocs.

The images themselves are built and run by tests/container/run.sh (minutes; called from .ci/run).
"""

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from spython.main.parse.parsers import DockerParser, SingularityParser

from bids_brainbert import __version__
from bids_brainbert.bids import derivatives
from bids_brainbert.bids.derivatives import generated_by

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DEFINITION = REPO / "singularity.def"
CACHE_VARIABLES = ("MPLCONFIGDIR", "NUMBA_CACHE_DIR", "TORCH_HOME", "XDG_CACHE_HOME")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# set differently on purpose: Apptainer manages HOME itself; each recipe names its own container type
PER_RUNTIME = {"HOME", "BIDS_BRAINBERT_CONTAINER_TYPE"}


def _recipe(parser_class, path: Path):
    return next(iter(parser_class(str(path)).recipe.values()))


@pytest.fixture(scope="module")
def docker():
    return _recipe(DockerParser, DOCKERFILE)


@pytest.fixture(scope="module")
def singularity():
    return _recipe(SingularityParser, DEFINITION)


def dockerfile_args() -> dict[str, str]:
    """ARG defaults of the Dockerfile (spython substitutes only those used in FROM)."""
    return dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), flags=re.M))


def expand_args(text: str) -> str:
    """``${NAME}`` -> the ARG's default, repeatedly (an ARG default may name another ARG)."""
    args = dockerfile_args()
    while "${" in text:
        text = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)
    return text


def docker_env(docker) -> dict[str, str]:
    return {k: expand_args(v) for k, v in (item.split("=", 1) for item in docker.environ)}


def singularity_env(singularity) -> dict[str, str]:
    return dict(item.split("=", 1) for item in singularity.environ)


def docker_labels(docker) -> dict[str, str]:
    return {key: expand_args(value.strip('"')) for key, value in (item.split("=", 1) for (item,) in docker.labels)}


def singularity_labels(singularity) -> dict[str, str]:
    return dict(item.split(" ", 1) for item in singularity.labels)


def test_same_base_image(docker, singularity):
    assert docker.fromHeader == singularity.fromHeader == "debian:bookworm-slim"
    assert dockerfile_args()["BASE_IMAGE"] == "debian:bookworm-slim"  # and a local base can be passed instead
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE.read_text(), flags=re.M)


def test_entrypoint_and_runscript_run_the_console_script_with_every_argument(docker, singularity):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "bids-brainbert" in scripts
    assert docker.entrypoint == ["bids-brainbert"]
    # exec form (a JSON array): signals reach the app, and arguments are not re-split by a shell
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", DOCKERFILE.read_text(), flags=re.M).group(1)
    assert json.loads(entrypoint) == ["bids-brainbert"]
    assert shlex.split(singularity.cmd) == ["exec", "bids-brainbert", "$@"]


def test_environment_agrees(docker, singularity):
    ours, theirs = docker_env(docker), singularity_env(singularity)
    assert set(ours) - PER_RUNTIME == set(theirs) - PER_RUNTIME
    for name in set(ours) - PER_RUNTIME:
        assert ours[name] == theirs[name], name
    assert ours["BIDS_BRAINBERT_CONTAINER_TYPE"] == "docker"
    assert theirs["BIDS_BRAINBERT_CONTAINER_TYPE"] == "singularity"
    assert ours["BIDS_BRAINBERT_CONTAINER_TAG"] == f"bids-brainbert:{__version__}"
    assert ours["PATH"].startswith("/opt/venv/bin:") and ours["PYTHONNOUSERSITE"] == "1"


def test_environment_is_safe_for_read_only_and_arbitrary_uid(docker):
    env = docker_env(docker)
    for name in CACHE_VARIABLES:  # /tmp is writable under podman --read-only, Docker --tmpfs /tmp, Apptainer
        assert env[name].startswith("/tmp/"), name
    assert env["MNE_DONTWRITE_HOME"] == "true"
    assert not set(THREAD_VARIABLES) & set(env), "thread counts follow --nprocs, not the image"
    text = DOCKERFILE.read_text()
    assert not re.search(r"^USER ", text, flags=re.M), "sites choose the UID"
    assert "chmod 1777 /home/bids-brainbert" in text and env["HOME"] == "/home/bids-brainbert"


def test_same_package_installed(docker, singularity):
    copied = {Path(src).name: dest for src, dest in docker.files}
    assert copied == {"pyproject.toml": "/src/pyproject.toml", "README.md": "/src/README.md",
                      "bids_brainbert": "/src/bids_brainbert"}
    assert {tuple(line.split()) for line in singularity.files} == {
        ("pyproject.toml", "/src/pyproject.toml"), ("README.md", "/src/README.md"),
        ("bids_brainbert", "/src/bids_brainbert")}
    docker_steps = " ".join(docker.install)
    singularity_steps = " ".join(singularity.install)
    for steps in (docker_steps, singularity_steps):
        assert "apt-get install -y --no-install-recommends python3 python3-venv" in steps
        assert "--no-deps /src" in steps and "-e /src" not in steps  # the repository's code, not editable
        assert '"bids-validator-deno>=2.0"' in steps
        assert "['project']['dependencies']" in steps  # dependencies from pyproject.toml, not a second list
    torch_version = dockerfile_args()["TORCH_VERSION"]
    assert f'"torch=={torch_version}"' in singularity_steps
    assert dockerfile_args()["TORCH_INDEX_URL"] in singularity_steps  # both CPU torch by default
    # the pinned torch satisfies the package's own requirement
    requirements = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
                    ["dependencies"]]
    torch_requirement = next(r for r in requirements if r.name == "torch")
    assert torch_requirement.specifier.contains(torch_version)


def test_labels_agree_and_follow_the_package_version(docker, singularity):
    ours, theirs = docker_labels(docker), singularity_labels(singularity)
    assert ours["org.opencontainers.image.version"] == __version__ == dockerfile_args()["VERSION"]
    assert theirs["org.opencontainers.image.version"] == __version__
    assert "org.opencontainers.image.revision" in ours  # set from --build-arg VCS_REF
    for key, value in theirs.items():
        assert ours[key] == value, key


def test_help_section_uses_only_real_options():
    """Every --option quoted in %help is one the CLI accepts (apptainer's own are on the 'apptainer' lines)."""
    from bids_brainbert.cli.parser import build_parser

    help_text = DEFINITION.read_text().split("%help", 1)[1].split("\n%", 1)[0]
    known = {s for a in build_parser()._actions for s in a.option_strings}
    apptainer_options = {"--cleanenv", "--nv", "--help", "--nproc-per-node"}
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text))
    assert used - apptainer_options <= known, used - apptainer_options - known


@pytest.mark.parametrize("runtime, env, expected", [
    ("docker", {"BIDS_BRAINBERT_CONTAINER_TYPE": "docker", "BIDS_BRAINBERT_CONTAINER_TAG": "bids-brainbert:x"},
     {"Type": "docker", "Tag": "bids-brainbert:x"}),
    ("singularity.def", {"BIDS_BRAINBERT_CONTAINER_TYPE": "singularity", "APPTAINER_CONTAINER": "/sw/bb.sif"},
     {"Type": "singularity", "Tag": "bb.sif"}),
    # a SIF converted from the Docker image keeps the Docker ENV, but Apptainer's own variable wins
    ("docker image under apptainer", {"BIDS_BRAINBERT_CONTAINER_TYPE": "docker",
                                      "SINGULARITY_CONTAINER": "/scratch/bids-brainbert_0.1.0.sif"},
     {"Type": "singularity", "Tag": "bids-brainbert_0.1.0.sif"}),
])
def test_generated_by_records_the_container(monkeypatch, runtime, env, expected):
    for name in ("BIDS_BRAINBERT_CONTAINER_TYPE", "BIDS_BRAINBERT_CONTAINER_TAG", "APPTAINER_CONTAINER",
                 "SINGULARITY_CONTAINER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert generated_by()["Container"] == expected, runtime


def test_generated_by_from_the_dockerfile_environment(monkeypatch, docker):
    """The variables the Dockerfile sets are the ones derivatives.py reads."""
    for name in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in docker_env(docker).items():
        if name.startswith("BIDS_BRAINBERT_"):
            monkeypatch.setenv(name, value)
    assert generated_by()["Container"] == {"Type": "docker", "Tag": f"bids-brainbert:{__version__}"}


def test_threads_follow_nprocs(demo_dataset, tmp_path):
    """A dry run with --nprocs 3 in a fresh process leaves torch with 3 threads and exports 3 to children."""
    root, _ = demo_dataset
    code = ("import os, torch; from bids_brainbert.cli.run import main; "
            f"assert main([{str(root)!r}, {str(tmp_path / 'out')!r}, 'participant', '--dry-run', "
            "'--skip-bids-validation', '--nprocs', '3']) == 0; "
            "print('THREADS', torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])")
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "7", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "THREADS 3 3 3" in done.stdout


def _no_container_environment(monkeypatch):
    for name in ("BIDS_BRAINBERT_CONTAINER_TYPE", "BIDS_BRAINBERT_CONTAINER_TAG", "APPTAINER_CONTAINER",
                 "SINGULARITY_CONTAINER"):
        monkeypatch.delenv(name, raising=False)


def test_a_plain_install_in_someone_elses_container_records_no_image(monkeypatch, tmp_path):
    """A venv run on a host with /.dockerenv (CI runners, development containers) is not our image."""
    _no_container_environment(monkeypatch)
    monkeypatch.setattr(derivatives, "IMAGE_MARKER", tmp_path / "absent" / "container.json")
    assert "Container" not in generated_by()


@pytest.mark.parametrize("recipe", ["Dockerfile", "singularity.def"])
def test_the_marker_file_each_recipe_writes_identifies_the_image(monkeypatch, tmp_path, docker, singularity, recipe):
    """The recipe's own shell lines that write the marker, run here with /etc moved into tmp_path."""
    _no_container_environment(monkeypatch)
    steps = docker.install if recipe == "Dockerfile" else singularity.install
    lines = [expand_args(step) for step in steps if "/etc/bids-brainbert" in step]
    assert lines, f"{recipe} writes no /etc/bids-brainbert marker"
    script = "\n".join(lines).replace("/etc/bids-brainbert", str(tmp_path / "etc"))
    subprocess.run(["bash", "-euc", script.removeprefix("RUN ")], check=True)
    monkeypatch.setattr(derivatives, "IMAGE_MARKER", tmp_path / "etc" / "container.json")
    expected = ({"Type": "docker", "Tag": f"bids-brainbert:{__version__}"} if recipe == "Dockerfile" else
                {"Type": "singularity", "Tag": f"bids-brainbert_{__version__}.sif"})
    assert generated_by()["Container"] == expected


def test_ci_finds_the_readme_commands_it_runs():
    """.ci/run takes the README's two commands with awk: a reworded heading once made CI stop before any test."""
    ci = (REPO / ".ci" / "run").read_text()
    lines = [line for line in ci.splitlines() if line.startswith(("test_command=", "demo_command="))]
    assert len(lines) == 2
    script = "\n".join(lines + ['printf "%s\\n%s\\n" "$demo_command" "$test_command"'])
    out = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout
    demo, tests = out.splitlines()
    assert demo.startswith("python3 -m venv") and demo.endswith("bids-brainbert demo demo_out")
    assert tests.startswith("python3 -m venv") and tests.endswith("-m pytest -n 2 tests")
