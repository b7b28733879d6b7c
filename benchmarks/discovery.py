"""Discovery speed on a big dataset layout: 300 subjects x 2 sessions x 4 runs (~10k files).

Prints our indexing time against mne_bids.find_matching_paths on the same tree, in the same process.
Files are empty placeholders: discovery reads names only. Run: python benchmarks/discovery.py [--subjects N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bids_brainbert.bids.discovery import Selection, index_recordings, select_recordings


def write_layout(root: Path, n_subjects: int, n_sessions: int, n_runs: int) -> int:
    (root / "dataset_description.json").write_text('{"Name": "bench", "BIDSVersion": "1.10.0"}')
    count = 1
    for s in range(1, n_subjects + 1):
        for ses in range(1, n_sessions + 1):
            folder = root / f"sub-{s:03d}" / f"ses-{ses:02d}" / "ieeg"
            folder.mkdir(parents=True)
            stem = f"sub-{s:03d}_ses-{ses:02d}"
            for name in (f"{stem}_space-ACPC_electrodes.tsv", f"{stem}_space-ACPC_coordsystem.json"):
                (folder / name).touch()
                count += 1
            for run in range(1, n_runs + 1):
                for suffix in ("ieeg.edf", "ieeg.json", "channels.tsv", "events.tsv"):
                    (folder / f"{stem}_task-listening_run-{run:02d}_{suffix}").touch()
                    count += 1
    return count


def best_of(repeats: int, func) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import mne_bids

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n_files = write_layout(root, args.subjects, 2, 4)
        ours, recordings = best_of(args.repeats, lambda: index_recordings(root))
        filtered, chosen = best_of(args.repeats, lambda: select_recordings(
            root, Selection(session_label=["02"], run=["3"])))
        reference, paths = best_of(args.repeats, lambda: mne_bids.find_matching_paths(
            root, datatypes="ieeg", suffixes="ieeg", extensions=".edf"))
    assert len(recordings) == len(paths) == args.subjects * 8, (len(recordings), len(paths))
    print(f"dataset: {args.subjects} subjects x 2 sessions x 4 runs, {n_files} files")
    print(f"{'method':42s} {'seconds':>8s} {'ratio':>8s}")
    print(f"{'mne_bids.find_matching_paths (reference)':42s} {reference:8.3f} {1.0:8.2f}")
    print(f"{'bids_brainbert index_recordings':42s} {ours:8.3f} {reference / ours:8.2f}x")
    print(f"{'bids_brainbert select (ses 02, run 3)':42s} {filtered:8.3f} {reference / filtered:8.2f}x")
    print(f"selected {len(chosen)} of {len(recordings)} recordings; budget 3 s: "
          f"{'OK' if ours < 3 else 'EXCEEDED'}")


if __name__ == "__main__":
    main()
