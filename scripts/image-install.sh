#!/usr/bin/env bash
# Build steps of the image's builder stages (Dockerfile), shared by the cpu and gpu flavours.
#   image-install.sh deps {cpu|gpu}   the serving dependencies of pyproject.toml into /opt/venv (wheels only)
#   image-install.sh app              /app installed editable (the service finds the models next to it), compiled,
#                                     import-checked; then pip and setuptools leave the venv
set -euo pipefail
case "${1:-}" in
    deps)
        python3 /tmp/build/image_requirements.py /tmp/build/pyproject.toml "$2" >/tmp/build/requirements.txt
        /opt/venv/bin/pip install -r /tmp/build/requirements.txt
        ;;
    app)
        cd /app
        env PIP_ONLY_BINARY= /opt/venv/bin/pip install --no-deps -e .
        /opt/venv/bin/python -m compileall -q service models
        /opt/venv/bin/python -c 'import onnxruntime, service.cli, models.forecaster.features'
        /opt/venv/bin/python -m pip uninstall -q -y pip setuptools
        ;;
    *) echo "usage: $0 deps {cpu|gpu} | app" >&2; exit 2 ;;
esac
