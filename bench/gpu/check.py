"""The GPU check in one go: each stage in its own process under its own time limit; after each, every stage's results
are merged into `results.json` and `report.md` is rewritten, so whatever finished is kept even if the call is cut.

A stage's limit is its share of `--seconds` plus what earlier stages left unused, never past the overall deadline;
a stage that cannot get `min_s` is skipped and says so. Stages run in order of what the targets need.

    python -m bench.gpu.check --out DIR [--seconds 480] [--stages env latency fp16 load compile tests]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.gpu.common import ROOT
from bench.gpu.report import render


@dataclass(frozen=True)
class Stage:
    name: str
    share: float  # of the overall budget
    min_s: float
    argv: list[str] = field(default_factory=list)  # after `python -m`; the results file and limits are added

    def command(self, results: Path, limit_s: float) -> list[str]:
        extra = ["--budget", f"{max(10.0, limit_s - 25):.0f}"] if self.name == "compile" else []
        return [sys.executable, "-m", *self.argv, "--json", str(results), *extra]


STAGES = [
    Stage("env", 0.06, 15, ["bench.gpu.env"]),
    Stage("latency", 0.22, 45, ["bench.gpu.latency"]),
    Stage("fp16", 0.10, 30, ["bench.gpu.fp16"]),
    Stage("load", 0.28, 60, ["bench.gpu.load"]),
    Stage("compile", 0.24, 40, ["bench.gpu.compiled"]),
    Stage("tests", 0.10, 30, []),
]
# On the host, a library's warning must not fail a test (the project's pytest settings turn warnings into errors).
TESTS = [
    "pytest",
    "-q",
    "-m",
    "gpu",
    "tests/gpu/test_cuda_runtime.py",
    "-p",
    "no:cacheprovider",
    "-W",
    "default",
]


def run_stage(stage: Stage, work: Path, limit_s: float, log: Path) -> dict[str, Any]:
    """Run one stage; its status, time and (for the tests) pytest's summary."""
    results = work / f"{stage.name}.json"
    command = [sys.executable, "-m", *TESTS] if stage.name == "tests" else stage.command(results, limit_s)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n===== stage {stage.name} (limit {limit_s:.0f} s): {' '.join(command)}\n")
        out.flush()
        # Its own process group: a stage stopped at its limit takes its servers and workers with it.
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=limit_s)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = "timed out (partial results kept)"
        finally:
            stop_group(process)
    outcome: dict[str, Any] = {"status": status, "seconds": time.monotonic() - started}
    if stage.name == "tests":
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        summary = next(
            (line for line in reversed(tail) if " passed" in line or " failed" in line or " skipped" in line),
            "",
        )
        results.write_text(
            json.dumps({"summary": summary.strip("= "), "tail": tail}) + "\n", encoding="utf-8"
        )
    if status != "ok":
        outcome["note"] = _last_error(log)
    return outcome


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the stage's process group (the HTTP servers drain and stop), SIGKILL to what is left after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the whole group is gone
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            time.sleep(0.5)  # the stage is gone; give its children a moment before the SIGKILL sweep


def _last_error(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = [line for line in lines[-200:] if "Error" in line or "error" in line]
    return (errors[-1] if errors else (lines[-1] if lines else ""))[:300]


def merge(work: Path, meta: dict[str, Any], stages: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {"meta": meta, "stages": stages}
    for stage in STAGES:
        path = work / f"{stage.name}.json"
        if path.exists():
            try:
                merged[stage.name] = json.loads(path.read_text(encoding="utf-8"))
            except (
                json.JSONDecodeError
            ) as exc:  # a stage killed while writing: its last complete file is gone
                merged[stage.name] = {"error": f"unreadable results: {exc}"}
    return merged


def publish(out: Path, merged: dict[str, Any]) -> None:
    (out / "results.json").write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    try:
        report = render(merged)
    except Exception as exc:  # a report that cannot be drawn must not lose the results
        report = f"# GPU check\n\nThe report could not be drawn ({exc!r}); results.json has everything.\n"
    (out / "report.md").write_text(report, encoding="utf-8")


def keep_server_logs(work: Path, out: Path, limit: int = 2**20) -> None:
    """The last MiB of each server's log from stage `load`, beside the report (what the service said on the GPU)."""
    for log in sorted((work / "servers").glob("*.log")):
        data = log.read_bytes()[-limit:]
        (out / f"server-{log.stem}.log").write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="report.md, results.json, log.txt and the servers' logs go here",
    )
    parser.add_argument("--seconds", type=float, default=480.0, help="for every stage together")
    parser.add_argument(
        "--stages", nargs="+", default=[s.name for s in STAGES], choices=[s.name for s in STAGES]
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/lnserve-gpu-check"))
    work.mkdir(parents=True, exist_ok=True)
    for stale in [*work.glob("*.json"), *work.glob("servers/*.log")]:  # an earlier run on this machine
        stale.unlink()
    prepared = ROOT / ".gpu" / "prepared.json"
    meta = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.gpu.check", *sys.argv[1:]]),
        "seconds": args.seconds,
        "commit": json.loads(prepared.read_text())["commit"] if prepared.exists() else "unknown",
    }
    deadline = time.monotonic() + args.seconds
    stages: dict[str, Any] = {}
    spare = 0.0
    for stage in (s for s in STAGES if s.name in args.stages):
        remaining = deadline - time.monotonic()
        limit = min(stage.share * args.seconds + spare, remaining)
        if limit < stage.min_s:
            stages[stage.name] = {"status": "skipped", "seconds": 0.0, "note": f"{remaining:.0f} s left"}
        else:
            stages[stage.name] = run_stage(stage, work, limit, args.out / "log.txt")
            spare = max(0.0, limit - stages[stage.name]["seconds"])
        publish(args.out, merge(work, meta, stages))
        keep_server_logs(work, args.out)
        print(
            f"stage {stage.name}: {stages[stage.name]['status']} ({stages[stage.name]['seconds']:.0f} s)",
            flush=True,
        )
    print((args.out / "report.md").read_text(encoding="utf-8").split("## Model latency")[0])


if __name__ == "__main__":
    main()
