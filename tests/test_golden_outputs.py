"""Byte-identical outputs: the participant level's data files (spectrograms, channel tables, embeddings, event
tables) for fixed settings equal the hashes recorded in tests/data/golden_outputs.json (see
tests/golden_outputs.py for the cases and the command that regenerates the file)."""

import json
import os
import subprocess
import sys

from golden_outputs import CASES, GOLDEN, HERE

ONE_THREAD = {**{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")},
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def test_outputs_are_byte_identical_to_the_golden_hashes():
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == sorted(CASES)
    done = subprocess.run([sys.executable, str(HERE / "golden_outputs.py")], env=ONE_THREAD, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = json.loads(done.stdout)
    for case in CASES:
        assert sorted(ours[case]) == sorted(golden[case]), case
        assert [name for name in golden[case] if ours[case][name] != golden[case][name]] == [], case
