#!/bin/bash
# Queue the participant level (one array task per subject) and the group level after it succeeded.
#
#   SIF=$PWD/bids-brainbert.sif BIDS_DIR=/data/my_ieeg OUT_DIR=/project/derivatives/bids-brainbert \
#     examples/hpc/submit.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SIF:?}" "${BIDS_DIR:?}" "${OUT_DIR:?}"
subjects=${SUBJECTS:-$PWD/subjects.txt}
"$here/list_subjects.sh" "$BIDS_DIR" > "$subjects"
n=$(wc -l < "$subjects")
[ "$n" -gt 0 ] || { echo "no sub-* folders in $BIDS_DIR" >&2; exit 16; }
participant=$(sbatch --parsable --array="1-$n" --export="ALL,SUBJECTS=$subjects" "$here/participant.sbatch")
group=$(sbatch --parsable --dependency="afterok:$participant" --export=ALL "$here/group.sbatch")
echo "participant level: job array $participant ($n subjects); group level: job $group"
