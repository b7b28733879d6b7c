"""Long pretraining runs: the time estimate at the start, a clear word on the CPU without --train-steps, a
resumable checkpoint when interrupted (Ctrl-C = SIGINT) before exiting 130, log lines instead of a repainted bar
when stderr is a file, and a Python warning on resuming with other settings as one log line."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

from bids_brainbert.bids.discovery import index_recordings

SMALL = ["--batch-size", "8", "--model-size", "small", "--train-window-s", "2", "--embedding-window-s", "2",
         "--skip-bids-validation", "--random-seed", "5", "--analysis", "pretrain", "--device", "cpu",
         "--participant-label", "01"]   # one subject, two runs: fewer embeddings to write


def group_command(root, out, *extra):
    return [sys.executable, "-m", "bids_brainbert", str(root), str(out), "group", *SMALL, *extra]


def latest_step(out) -> int:
    latest = json.loads((out / "models" / "desc-brainbert" / "checkpoints" / "latest.json").read_text())
    return int(latest["checkpoint"].removeprefix("step-"))


def test_interrupted_pretraining_saves_a_resumable_checkpoint(demo_derivatives, tmp_path):
    root, derivatives, _ = demo_derivatives
    out = tmp_path / "out"
    shutil.copytree(derivatives, out)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the default 2000 steps (no --train-steps): hours on a CPU, so it is interrupted once the estimate is out
    process = subprocess.Popen(group_command(root, out), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, env=env)
    lines: list[str] = []
    estimated = threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if "s per step on the CPU" in line:
                estimated.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert estimated.wait(timeout=600), "".join(lines[-20:])
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=300)
        reader.join(timeout=60)
    err = "".join(lines)
    assert process.returncode == 130, err[-3000:]
    assert "pretraining on the CPU with the default 2000 steps (no --train-steps given)" in err
    estimate = re.search(r"pretraining: ([\d.]+) s per step on the CPU, (\d+) of 2000 steps left: about (.+?) more "
                         r"\(shorter: --train-steps N", err)
    assert estimate and float(estimate[1]) > 0, err
    step = latest_step(out)
    assert f"interrupted at step {step} of 2000: checkpoint saved to" in err
    assert "bids-brainbert: interrupted; re-run the same command" in err
    assert 6 <= step < 500   # the first regular checkpoint would have been at step 500
    assert "\r" not in err   # stderr is a pipe here: log lines, not a bar repainted in place
    checkpoint = out / "models" / "desc-brainbert" / "checkpoints" / f"step-{step:08d}"
    assert json.loads((checkpoint / "config.json").read_text())["training"]["steps"] == step

    # the same command with fewer steps: resumes from that step (other settings: a one-line warning, no traceback)
    done = subprocess.run(group_command(root, out, "--train-steps", str(step + 2)), capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"(step {step})" in done.stderr and "resuming from" in done.stderr
    warning = [line for line in done.stderr.splitlines() if "resuming with changed settings" in line]
    assert len(warning) == 1 and "| WARNING" in warning[0] and "'steps'" in warning[0], done.stderr
    assert "UserWarning" not in done.stderr and "warnings.warn" not in done.stderr
    assert latest_step(out) == step + 2
    assert re.search(rf"\| pretrain: 100% \({step + 2}/{step + 2} steps\)", done.stderr)   # a progress log line
    embedded = [r for r in index_recordings(root) if r.subject == "01"]
    assert len(list(out.rglob("*_desc-brainbert_embeddings.npy"))) == len(embedded) == 2


def test_reports_alone_log_a_line_per_report(demo_derivatives, tmp_path, capsys):
    """``--analysis reports`` takes seconds per subject: a line as each report starts, not silence."""
    from bids_brainbert.cli.run import main

    root, derivatives, _ = demo_derivatives
    out = tmp_path / "out"
    shutil.copytree(derivatives, out)
    assert main([str(root), str(out), "group", "--analysis", "reports", "--skip-bids-validation"]) == 0
    err = capsys.readouterr().err
    subjects = sorted({r.subject for r in index_recordings(root)})
    for number, subject in enumerate(subjects, start=1):
        assert f"report {number} of {len(subjects)}: sub-{subject}.html" in err
    assert "report: group_ieeg.html" in err and f"reports written to {out}" in err
    assert err.index(f"sub-{subjects[-1]}.html") < err.index("report: group_ieeg.html")
