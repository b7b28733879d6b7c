#!/bin/bash
# One subject label per line (without "sub-") for the SLURM array: the sub-* folders of a BIDS dataset.
set -euo pipefail
bids_dir=${1:?usage: list_subjects.sh BIDS_DIR}
find "$bids_dir" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' | sed 's/^sub-//' | sort
