#!/usr/bin/env bash
# End-to-end test of the container image (minutes, so not part of `pytest tests`; .ci/run calls it last).
#
#   bash tests/container/run.sh
#
# 1. makes podman usable with ../shared/tools/podman-setup.sh (podman, runc, a local Debian base image);
# 2. builds the Dockerfile with podman (local base, local CPU torch wheel, the machine's CA bundle as a secret);
# 3. in the container, as HPC sites and BIDS-Apps CI run it (--read-only, --user 1234:1234, --network=none,
#    input mounted read-only): writes the demo dataset, runs the participant level, the group level, the
#    group level again under torchrun with two processes, and the participant level into the dataset's own
#    derivatives/bids-brainbert folder (the dataset read-only, that folder mounted writable over it);
# 4. runs the README's `docker run` line verbatim, with the docker CLI talking to podman's API socket;
# 5. runs the participant level natively on the same dataset and checks the container's outputs against it
#    (tests/container/check_outputs.py, with the repository's .venv).
# Needs: root (apt-get, podman), the .venv of the README's test command. Fails (exit 1) rather than skips.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
started=$SECONDS
phase() { echo "=== $1 ($((SECONDS - started)) s so far)"; }
fail() { echo "container test FAILED: $*" >&2; exit 1; }

python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || fail "$python not found: create the .venv with the README's test command first"
version=$("$python" -c 'import bids_brainbert; print(bids_brainbert.__version__)')
image=localhost/bids-brainbert:$version

# --- 1. podman ------------------------------------------------------------------------------------------------
setup=${PODMAN_SETUP:-$repo/../shared/tools/podman-setup.sh}
[ -f "$setup" ] || fail "$setup not found (set PODMAN_SETUP to podman-setup.sh)"
phase "podman setup: $setup"
bash "$setup"
export CONTAINERS_CONF=${PODMAN_CONF_DIR:-/tmp/podman-conf}/containers.conf
command -v docker >/dev/null || fail "the docker CLI is needed to run the README's docker line"

# --- 2. build -------------------------------------------------------------------------------------------------
phase "building $image"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)  # read once: the checks compare against the same one
build_args=(--pull=never --build-arg BASE_IMAGE=localhost/debian:bookworm-slim
            --build-arg VERSION="$version" --build-arg IMAGE_TAG="$image"
            --build-arg VCS_REF="$revision"
            # podman/buildah 1.28 reuses a cached LABEL layer whose ARG value changed (its cache key is the
            # unexpanded instruction), so a rebuild at a new commit kept the old revision: set it at commit time
            --label org.opencontainers.image.revision="$revision")
[ -s /etc/ssl/certs/ca-certificates.crt ] && build_args+=(--secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt)
[ -d /opt/wheels ] && build_args+=(-v /opt/wheels:/opt/wheels:ro)
build_start=$SECONDS
podman build "${build_args[@]}" -t "$image" .
build_seconds=$((SECONDS - build_start))
podman image inspect "$image" > /dev/null
# the README's lines name the image without a registry, as `docker build -t bids-brainbert:<version>` would
podman tag "$image" "bids-brainbert:$version"

work=$(mktemp -d /tmp/bids-brainbert-container.XXXXXX)
socket_pid=
cleanup() {
  [ -n "$socket_pid" ] && kill "$socket_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
podman image inspect "$image" > "$work/image.json"
mkdir -p "$work/demo" "$work/out" "$work/out-torchrun"
chmod 0777 "$work/demo" "$work/out" "$work/out-torchrun"   # written by an arbitrary UID

hpc_run=(podman run --rm --read-only --network=none --user 1234:1234)
group_fast=(--model-size small --train-steps 12 --batch-size 8 --checkpoint-every 6 --train-window-s 2
            --embedding-window-s 2 --random-seed 7)
run_start=$SECONDS

# --- 3. the demo dataset through both levels, as an HPC site runs it ---------------------------------------------
phase "container: demo dataset"
"${hpc_run[@]}" -v "$work/demo:/demo" "$image" demo /demo --dataset-only
phase "container: participant level"
"${hpc_run[@]}" -v "$work/demo/rawdata:/data:ro" -v "$work/out:/out" "$image" \
  /data /out participant --nprocs 2 --random-seed 7
phase "container: group level"
"${hpc_run[@]}" -v "$work/demo/rawdata:/data:ro" -v "$work/out:/out" "$image" \
  /data /out group --nprocs 2 "${group_fast[@]}"
phase "container: group level under torchrun (2 processes, one subject)"
cp -r "$work/out/." "$work/out-torchrun/" && rm -rf "$work/out-torchrun/models"
find "$work/out-torchrun" -name '*_embeddings.*' -delete
chmod -R a+rwX "$work/out-torchrun"
"${hpc_run[@]}" -v "$work/demo/rawdata:/data:ro" -v "$work/out-torchrun:/out" --entrypoint torchrun "$image" \
  --standalone --nproc-per-node 2 -m bids_brainbert /data /out group --participant-label 03 \
  --skip-bids-validation "${group_fast[@]}"

phase "container: participant level into the dataset's own derivatives/ folder (dataset read-only)"
mkdir -p "$work/layout" && cp -r "$work/demo/rawdata" "$work/layout/ds"
mkdir -p "$work/layout/ds/derivatives/bids-brainbert" && chmod 0777 "$work/layout/ds/derivatives/bids-brainbert"
"${hpc_run[@]}" -v "$work/layout/ds:/data:ro" \
  -v "$work/layout/ds/derivatives/bids-brainbert:/data/derivatives/bids-brainbert" "$image" \
  /data /data/derivatives/bids-brainbert participant --nprocs 2 --random-seed 7
# the marker file by which the app knows it runs in its own image
"${hpc_run[@]}" --entrypoint cat "$image" /etc/bids-brainbert/container.json > "$work/marker.json"

# --- 4. the README's docker line, verbatim, through podman's Docker-compatible socket -----------------------------
phase "docker CLI: the README's docker run line"
docker_line=$(grep -E '^docker run ' README.md | head -n 1)
[ -n "$docker_line" ] || fail "no line starting with 'docker run' in README.md"
[[ "$docker_line" == *"bids-brainbert:$version"* ]] || fail "the README's docker line does not use bids-brainbert:$version"
podman system service --time=0 "unix://$work/podman.sock" & socket_pid=$!
export DOCKER_HOST=unix://$work/podman.sock
for _ in $(seq 50); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
docker version >/dev/null || fail "docker CLI cannot reach podman at $DOCKER_HOST"
mkdir -p "$work/readme/demo_out/derivatives/bids-brainbert"
cp -r "$work/demo/rawdata" "$work/readme/demo_out/rawdata"
(cd "$work/readme" && echo "+ $docker_line" && bash -c "$docker_line")
run_seconds=$((SECONDS - run_start))

# --- 5. native reference and checks ---------------------------------------------------------------------------
phase "native participant level (reference) and checks"
"$python" -m bids_brainbert "$work/demo/rawdata" "$work/native" participant --nprocs 2 --random-seed 7 \
  --skip-bids-validation
"$python" tests/container/check_outputs.py --work "$work" --image-json "$work/image.json" \
  --revision "$revision"

echo "container test passed: build ${build_seconds} s, container runs ${run_seconds} s, total $((SECONDS - started)) s"
