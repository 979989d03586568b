"""Print the serving requirements of pyproject.toml for one image target, one per line.

The project's dependencies pick onnxruntime-gpu on Linux x86_64. The `cpu` image wants plain onnxruntime (a
fifth of the size, no CUDA), the `gpu` image wants onnxruntime-gpu with the CUDA 13 / cuDNN 9 wheels it loads.
Everything else is taken as written, so the image never drifts from pyproject.toml.

Usage: python3 image_requirements.py pyproject.toml {cpu|gpu}
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ORT_PACKAGES = {"onnxruntime", "onnxruntime-gpu"}
ORT_FOR_TARGET = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu[cuda,cudnn]"}
# gRPC everywhere; onnx for int8 at load (cpu), for fp16 at load and NVML (gpu)
IMAGE_EXTRAS = {"cpu": ("grpc", "int8"), "gpu": ("grpc", "gpu")}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return match.group(1).lower().replace("_", "-")


def _version(requirement: str) -> str:
    """The version specifier of a requirement, without extras or environment marker."""
    spec = requirement.split(";", 1)[0]
    return re.sub(r"^\s*[A-Za-z0-9._-]+(\[[^\]]*\])?", "", spec).strip()


def image_requirements(dependencies: list[str], target: str) -> list[str]:
    lines: list[str] = []
    ort_version = ""
    for requirement in dependencies:
        if _name(requirement) in ORT_PACKAGES:
            ort_version = ort_version or _version(requirement)
        else:
            lines.append(requirement)
    lines.append(ORT_FOR_TARGET[target] + ort_version)
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in ORT_FOR_TARGET:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    project = tomllib.loads(Path(argv[1]).read_text())["project"]
    extras = [r for extra in IMAGE_EXTRAS[argv[2]] for r in project["optional-dependencies"][extra]]
    print("\n".join(image_requirements([*project["dependencies"], *extras], argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
