"""What `make gpu-prepare` computes: the wheels a GPU host lacks, the onnxruntime-gpu wheel cut into parts that fit
one device call each, and the exact call plan for this tree's size (`.gpu/PLAN.md`).

A device call carries the working tree (tracked and untracked-not-ignored files) plus its `carry` paths, 64 MiB in
all. The onnxruntime-gpu wheel (~255 MB) therefore travels in parts, one call each, into /tmp/ortparts of a machine
that stays warm ~30 s between calls; the last part rides with the check itself when it fits there.

    python -m bench.gpu.plan pins                 # name==version of every wheel to carry (the venv's versions)
    python -m bench.gpu.plan check-wheels .whl    # every requirement of the carried wheels is carried or on the host
    python -m bench.gpu.plan split WHEEL          # .ortgpu/p1..pN, .gpu/ortgpu.json, .gpu/prepared.json, .gpu/PLAN.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.gpu.install import digest as sha256

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
CALL_LIMIT = 62 * MIB  # what one call may carry (64 MiB), less a margin for files added after preparing
CARRY = [
    "fastapi",
    "starlette",
    "annotated-doc",
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "python-dotenv",
    "annotated-types",
    "typing-inspection",
    "typing-extensions",
    "uvicorn",
    "httptools",
    "opentelemetry-api",  # fastapi >= 0.16x imports it
]
"""The service's dependencies the GPU image lacks (/work/.library/device/KINDS.md lists what it has)."""
ON_HOST = {
    canonicalize_name(n)
    for n in [
        "anyio",
        "aiohttp",
        "click",
        "h11",
        "httpx",
        "idna",
        "sniffio",
        "numpy",
        "onnx",
        "packaging",
        "protobuf",
        "flatbuffers",
        "sympy",
        "tokenizers",
        "prometheus-client",
        "typer",
        "uvloop",
        "nvidia-ml-py",
        "pytest",
        "pytest-timeout",
        "pyyaml",
        "torch",
        "coloredlogs",
    ]
}
"""Packages the GPU image has (KINDS.md, 'Python packages already there')."""
HOST_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
                "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}  # fmt: skip


def pins() -> list[str]:
    return [f"{name}=={version(name)}" for name in CARRY]


def unmet_requirements(wheels: list[Path]) -> list[str]:
    """Requirements (for Python 3.12 on Linux x86-64, no extras) of `wheels` that neither they nor the host meet."""
    carried = {canonicalize_name(w.name.split("-")[0]) for w in wheels}
    unmet = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(metadata).decode().splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.removeprefix("Requires-Dist:").strip())
            if requirement.marker is not None and not requirement.marker.evaluate(HOST_MARKERS):
                continue
            name = canonicalize_name(requirement.name)
            if name not in carried and name not in ON_HOST:
                unmet.append(f"{wheel.name}: {requirement}")
    return unmet


def tree_bytes(root: Path = ROOT) -> int:
    """What every device call carries whatever its `carry`: tracked and untracked-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return sum(
        (root / name).stat().st_size
        for name in listed.decode().split("\0")
        if name and (root / name).is_file()
    )


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Plan:
    part_bytes: int
    parts: int
    last_with_check: bool  # the last part rides with the check


def plan(wheel: int, tree: int, check_extra: int, limit: int = CALL_LIMIT) -> Plan:
    """Parts as large as a call allows; the last one goes with the check if tree + check's carry + it fit."""
    room = limit - tree
    if room < 4 * MIB:
        raise SystemExit(
            f"the tree alone is {tree / MIB:.1f} MiB: no room for the parts under {limit / MIB:.0f} MiB"
        )
    part = (room // MIB) * MIB
    parts = math.ceil(wheel / part)
    last = wheel - (parts - 1) * part
    return Plan(part, parts, tree + check_extra + last <= limit)


def split(wheel: Path, part_bytes: int, out: Path) -> list[dict[str, object]]:
    """`out`/p1 … pN, each holding one part `part.NN`; their names, sizes and sha256."""
    for old in out.glob("p[0-9]*"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    parts = []
    with wheel.open("rb") as handle:
        for k in range(1, 10_000):
            chunk = handle.read(part_bytes)
            if not chunk:
                break
            folder = out / f"p{k}"
            folder.mkdir(parents=True)
            path = folder / f"part.{k:02d}"
            path.write_bytes(chunk)
            parts.append(
                {
                    "name": path.name,
                    "folder": f"{out.name}/p{k}",
                    "bytes": len(chunk),
                    "sha256": hashlib.sha256(chunk).hexdigest(),
                }
            )
    return parts


def call_plan(p: Plan, parts: list[dict[str, object]], tree: int, extra: int, wheel_name: str) -> str:
    """The exact device calls, as the next session should make them."""
    copy = "mkdir -p /tmp/ortparts && cp {folder}/part.* /tmp/ortparts/ && ls -l /tmp/ortparts"
    separate = parts if not p.last_with_check else parts[:-1]
    check_carry = [*([str(parts[-1]["folder"])] if p.last_with_check else []), ".whl", ".gpu"]
    lines = [
        "# GPU check: the call plan for this tree",
        "",
        f"Written by `make gpu-prepare` on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}. Tree {tree / MIB:.1f} MiB;"
        f" `.whl` + `.gpu` {extra / MIB:.1f} MiB; {wheel_name} in {len(parts)} parts of at most"
        f" {p.part_bytes / MIB:.0f} MiB. Make the calls back to back: a machine keeps /tmp only ~30 s after a call.",
        "",
    ]
    for i, part in enumerate(separate, 1):
        lines.append(
            f'{i}. `run` command=`{copy.format(folder=part["folder"])}` carry=`["{part["folder"]}"]` timeout_s=60'
        )
    n = len(separate) + 1
    lines += [
        f"{n}. `run` command=`LIMIT=<T> bash bench/gpu/run.sh` carry=`{json.dumps(check_carry)}` timeout_s=<T>,"
        " where T = min(600, the last reply's lease.budget_left_s - 40). Then read report.md and results.json from"
        " the reply's files_at.",
        "",
        "If a part call's reply shows `warm: false` after it, or run.sh reports missing parts, the machine went cold"
        " and lost the parts copied before: the report says which to carry again.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pins")
    check = sub.add_parser("check-wheels")
    check.add_argument("folder", type=Path)
    cut = sub.add_parser("split")
    cut.add_argument("wheel", type=Path)
    args = parser.parse_args()
    if args.command == "pins":
        print(" ".join(pins()))
    elif args.command == "check-wheels":
        unmet = unmet_requirements(sorted(args.folder.glob("*.whl")))
        if unmet:
            sys.exit("requirements neither carried nor on the GPU host:\n" + "\n".join(unmet))
    else:
        gpu = ROOT / ".gpu"
        gpu.mkdir(exist_ok=True)
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        prepared = {"commit": commit, "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}"}
        (gpu / "prepared.json").write_text(json.dumps(prepared) + "\n", encoding="utf-8")
        tree = tree_bytes()
        extra = folder_bytes(ROOT / ".whl") + folder_bytes(gpu) + 64 * 1024  # + the manifest and plan
        p = plan(args.wheel.stat().st_size, tree, extra)
        parts = split(args.wheel, p.part_bytes, ROOT / ".ortgpu")
        manifest = {
            "wheel": args.wheel.name,
            "bytes": args.wheel.stat().st_size,
            "sha256": sha256(args.wheel),
            "parts": parts,
        }
        (gpu / "ortgpu.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        text = call_plan(p, parts, tree, extra, args.wheel.name)
        (gpu / "PLAN.md").write_text(text, encoding="utf-8")
        print(text)


if __name__ == "__main__":
    main()
