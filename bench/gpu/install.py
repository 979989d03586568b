"""On the GPU host, before anything else: gather the onnxruntime-gpu parts (carried in this call and copied into
/tmp/ortparts by the calls before), check them against `.gpu/ortgpu.json`, join them, and install the wheel with the
carried `.whl/*.whl` into one folder for PYTHONPATH. Standard library only: nothing else is installed yet.

    python3 bench/gpu/install.py [--site /tmp/site] [--stash /tmp/ortparts]

Exit 0: all installed. Exit 3: parts missing or damaged (named on stderr; `.whl` is installed anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            sha.update(chunk)
    return sha.hexdigest()


def gather(root: Path, stash: Path) -> None:
    """Copy the parts this call carried into the stash, where earlier calls left theirs."""
    stash.mkdir(parents=True, exist_ok=True)
    for part in sorted((root / ".ortgpu").glob("p*/part.*")):
        shutil.copyfile(part, stash / part.name)


def join(manifest: dict[str, object], stash: Path, target: Path) -> list[str]:
    """The wheel joined from the stash at `target`; the names of parts missing or damaged (then no wheel)."""
    parts = manifest["parts"]
    assert isinstance(parts, list)
    bad = [
        p["name"]
        for p in parts
        if not (stash / p["name"]).is_file() or digest(stash / p["name"]) != p["sha256"]
    ]
    if bad:
        return bad
    with target.open("wb") as out:
        for p in parts:
            with (stash / p["name"]).open("rb") as handle:
                shutil.copyfileobj(handle, out)
    if digest(target) != manifest["sha256"]:
        target.unlink()
        return ["(the joined wheel's sha256)"]
    return []


def pip_install(wheels: list[Path], site: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)]  # fmt: skip
    subprocess.run(command, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--site", type=Path, default=Path("/tmp/site"))
    parser.add_argument("--stash", type=Path, default=Path("/tmp/ortparts"))
    args = parser.parse_args()
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    manifest = json.loads((ROOT / ".gpu" / "ortgpu.json").read_text(encoding="utf-8"))
    gather(ROOT, args.stash)
    target = args.stash.parent / str(manifest["wheel"])
    bad = (
        []
        if target.is_file() and digest(target) == manifest["sha256"]
        else join(manifest, args.stash, target)
    )
    if bad:
        print(
            f"onnxruntime-gpu parts missing or damaged: {bad}; carry them again (.gpu/PLAN.md)",
            file=sys.stderr,
        )
        pip_install(wheels, args.site)
        return 3
    pip_install([*wheels, target], args.site)
    print(f"installed {len(wheels) + 1} wheels into {args.site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
