# lnserve: the serving image. Two targets from one file:
#   docker build --target cpu -t lnserve:cpu .      # onnxruntime (CPU)
#   docker build --target gpu -t lnserve:gpu .      # onnxruntime-gpu with the CUDA 13 / cuDNN 9 wheels
# BASE_IMAGE may be a Python image (the default) or a plain Debian bookworm, which gets Debian's python3.
# The final images hold a virtual environment with the serving dependencies only (no torch, no compilers),
# the service code and the bundled models' artifacts. See docs/deployment.md.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------------------
# base: a Python >= 3.11 interpreter and nothing else.
FROM ${BASE_IMAGE} AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8
# Distribution packages follow the base image's release; pinning them would break on every point release.
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb; \
    fi \
    && python3 -c 'import sys; assert sys.version_info >= (3, 11), sys.version'

# ---------------------------------------------------------------------------------------------------------------
# builder-*: the virtual environment at /opt/venv and the code at /app, installed editable so the service finds
# the models next to it (/app/models). Only wheels are installed: no compiler is needed or present.
FROM base AS builder-base
# A package index mirror, if the build machine has one (scripts/build-image.sh passes the host's). No defaults:
# an ARG with an empty default defeats buildah's layer cache.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120 \
    PIP_ONLY_BINARY=:all:
RUN python3 -m venv /opt/venv
COPY pyproject.toml scripts/image_requirements.py scripts/image-install.sh /tmp/build/

# The code, apart from the dependencies, so that editing it does not invalidate the dependency layers.
FROM base AS source
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service/ service/
COPY models/ models/

# One builder per onnxruntime flavour; scripts/image-install.sh holds the steps both run.
FROM builder-base AS builder-cpu
RUN /tmp/build/image-install.sh deps cpu
COPY --from=source /app /app
RUN /tmp/build/image-install.sh app

FROM builder-base AS builder-gpu
RUN /tmp/build/image-install.sh deps gpu
COPY --from=source /app /app
RUN /tmp/build/image-install.sh app

# ---------------------------------------------------------------------------------------------------------------
# runtime: what both final images share.
FROM base AS runtime
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 lnserve \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin lnserve
# HOME: the user has none, and libraries that keep a small cache or id there (ONNX Runtime's telemetry id) need a
# writable place; /tmp is the one writable path under a read-only root filesystem.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    LNSERVE_HOST=0.0.0.0 \
    LNSERVE_PORT=8000 \
    LNSERVE_MODEL_DIR=/app/models \
    LNSERVE_LOG_FORMAT=json
WORKDIR /app
EXPOSE 8000 8001
# uvicorn drains in-flight requests on SIGTERM (LNSERVE_GRACEFUL_TIMEOUT_S, 30 s by default).
STOPSIGNAL SIGTERM
# Ready means every model is loaded and warmed up; the first start may take a minute on a small CPU.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('LNSERVE_PORT', '8000'), timeout=4)"]
USER 10001:10001
ENTRYPOINT ["lnserve"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------------------------
FROM runtime AS gpu
COPY --from=builder-gpu /opt/venv /opt/venv
COPY --from=builder-gpu /app /app
# Read by the NVIDIA container toolkit: expose the GPUs and the driver's compute libraries.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LNSERVE_PROVIDERS=auto

# The cpu image is the last stage, so a build without --target gives it.
FROM runtime AS cpu
COPY --from=builder-cpu /opt/venv /opt/venv
COPY --from=builder-cpu /app /app
ENV LNSERVE_PROVIDERS=cpu
