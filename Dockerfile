# bids-brainbert as a BIDS-App image.
#
#   docker build --build-arg VCS_REF=$(git rev-parse HEAD) -t bids-brainbert:0.1.0 .         # CPU torch (default)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t bids-brainbert:0.1.0-cuda .
#
# Safe for HPC-style runs: read-only root file system, any UID, no network. Everything the app or its libraries
# might write (caches, config) points at /tmp, which podman and Apptainer keep writable (Docker: --tmpfs /tmp).
# The same image as an Apptainer recipe: singularity.def (tests/test_container_recipes.py keeps the two in step).
# Layers go from the least to the most often changed, so a new commit rebuilds only the package layer.

# A plain Debian base (not python:*) so that a locally built Debian root file system can stand in for it offline.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# CPU wheels by default; a CUDA build passes e.g. https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

# Debian's python3 (3.11 in bookworm); no compilers are needed, every dependency ships wheels
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN python3 -m venv "$VIRTUAL_ENV"

# torch first, in its own layer: a CPU wheel mounted at /opt/wheels (no route to the torch index) wins; its
# dependencies still come from PyPI.
# A site's TLS-intercepting proxy: pass its CA bundle as the build secret "pip-ca" (podman/docker build
# --secret id=pip-ca,src=FILE); pip sees it during the build only and it is never stored in the image.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && if ls /opt/wheels/torch-"${TORCH_VERSION}"*.whl >/dev/null 2>&1 \
       && [ "$TORCH_INDEX_URL" = "https://download.pytorch.org/whl/cpu" ]; \
    then pip install --no-cache-dir /opt/wheels/torch-"${TORCH_VERSION}"*.whl; \
    else pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"; fi

# the dependencies (from pyproject.toml) and the official BIDS validator the app runs on the input, then the
# package itself from this repository (not editable): a code change rebuilds only that last, small layer
COPY pyproject.toml /src/pyproject.toml
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && python3 -c "import tomllib; print(*tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt "bids-validator-deno>=2.0" \
 && rm /tmp/requirements.txt
COPY README.md /src/README.md
COPY bids_brainbert /src/bids_brainbert
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && pip install --no-cache-dir --no-deps /src \
 && rm -rf /src \
 && bids-brainbert --version

# HOME exists and any UID may write it (no USER line: sites choose the UID). Caches go to /tmp, which stays
# writable under --read-only; MNE_DONTWRITE_HOME keeps MNE out of ~/.mne. Thread counts are not pinned here:
# the app sizes its thread pools from --nprocs (bids_brainbert/threads.py), which an image-wide
# OMP_NUM_THREADS would only contradict.
RUN mkdir -p /home/bids-brainbert && chmod 1777 /home/bids-brainbert

# the package's version (a test checks it equals bids_brainbert.__version__) and the image's name, which the app
# records in GeneratedBy.Container (pass the name you push it under, e.g. ghcr.io/ORG/bids-brainbert:0.1.0)
ARG VERSION=0.1.0
ARG IMAGE_TAG=bids-brainbert:${VERSION}
# the marker that makes the app record this image (not any container it happens to run in) in GeneratedBy
RUN mkdir -p /etc/bids-brainbert \
 && printf '{"Type": "docker", "Tag": "%s"}\n' "${IMAGE_TAG}" > /etc/bids-brainbert/container.json
ENV HOME=/home/bids-brainbert \
    MPLCONFIGDIR=/tmp/bids-brainbert/matplotlib \
    NUMBA_CACHE_DIR=/tmp/bids-brainbert/numba \
    TORCH_HOME=/tmp/bids-brainbert/torch \
    XDG_CACHE_HOME=/tmp/bids-brainbert/cache \
    DENO_DIR=/tmp/bids-brainbert/deno \
    MNE_DONTWRITE_HOME=true \
    PYTHONNOUSERSITE=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BIDS_BRAINBERT_CONTAINER_TYPE=docker \
    BIDS_BRAINBERT_CONTAINER_TAG=${IMAGE_TAG}

# OCI labels last: the revision changes with every commit and must not invalidate the layers above
ARG VCS_REF=unknown
ARG SOURCE_URL=https://github.com/bids-brainbert/bids-brainbert
LABEL org.opencontainers.image.title="bids-brainbert"
LABEL org.opencontainers.image.description="BIDS-App: BrainBERT-style representations of intracranial EEG"
LABEL org.opencontainers.image.version="${VERSION}"
LABEL org.opencontainers.image.revision="${VCS_REF}"
LABEL org.opencontainers.image.source="${SOURCE_URL}"
LABEL org.opencontainers.image.licenses="BSD-3-Clause"

WORKDIR /tmp
ENTRYPOINT ["bids-brainbert"]
CMD ["--help"]
