"""The GPU benchmark script runs end to end on the CPU with tiny sizes, so it is ready whenever a GPU is."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_on_the_cpu_and_checks_its_equalities():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--device", "cpu", "--tiny",
                           "--repeats", "1", "--time-limit", "400"], capture_output=True, text=True, timeout=500,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = proc.stdout.split("== benchmarks/gpu.py on ")[1]
    rows = {tuple(cell.strip() for cell in line.split("|")[:3]) for line in table.splitlines() if "|" in line}
    assert ("superlet", "max abs(torch - numba) / row peak") in {r[:2] for r in rows}
    assert "equal within float32 tolerance" in table               # torch superlet = numba superlet
    assert any(r[0] == "torchrun" and r[2] == "equal" for r in rows), table   # torchrun x1 = plain run
    assert any(r[0] == "pretraining" and "steps/s" in r[2] for r in rows)
    assert sum(r[0] == "embedding" and "windows/s" in r[2] for r in rows) == 2   # bf16 and float32
