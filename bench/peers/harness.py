"""Runs the peer benchmark: servers one at a time, in an order rotated every round; each started fresh per round
(cold start, idle memory), checked (the intent of every benchmark message against the shared pipeline's), warmed,
driven by wrk at each concurrency (loaded memory sampled meanwhile), and stopped whole with its ports checked free.

Only one server runs at a time, so an idle server (LitServe's collector loop, Ray's daemons) never takes CPU from
the one being measured; rounds repeat the whole order so slow drifts of a shared machine hit every server alike.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.peers.pipeline import ARTIFACT_ENV, THREADS_ENV, ChatPipeline
from bench.peers.process import HOST, Tree, free_ports, port_is_free
from bench.peers.servers import Server
from bench.servers import batch_totals, clean_env
from bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parents[2]
QUIET = {
    # No telemetry or update checks: the machine has no network, and a timed-out call would slow the start.
    "RAY_USAGE_STATS_ENABLED": "0",
    "BENTOML_DO_NOT_TRACK": "True",
    "DO_NOT_TRACK": "1",
}
PACKAGES = ("lnserve", "fastapi", "uvicorn", "onnxruntime", "onnxruntime-gpu", "nvidia-pytriton", "mlserver")
PACKAGES += ("bentoml", "litserve", "ray", "numpy", "pydantic", "tokenizers")


@dataclass(frozen=True)
class Plan:
    concurrency: list[int]
    seconds: int
    rounds: int
    warmup_s: int
    threads: int  # ORT intra-op threads of every server (0: the service's rule for the machine)
    peers_dir: Path
    out: Path
    settle_s: float = 1.0  # pause between the correctness check and the idle memory reading


@dataclass
class Session:
    """One start of one server: what it cost to start and hold, whether it answered right, and its load runs."""

    round: int
    load_avg: float = 0.0  # the machine's 1-minute load average when the session started
    cold_start_s: float = 0.0
    idle_rss: int = 0
    idle_processes: int = 0
    loaded_rss: int = 0
    loaded_processes: int = 0
    checked: int = 0
    mismatches: list[dict[str, str]] = field(default_factory=list)
    loads: dict[int, dict[str, float]] = field(default_factory=dict)
    mean_batch: dict[int, float] = field(default_factory=dict)
    failure: str = ""
    stop_failure: str = ""
    pids: list[int] = field(default_factory=list)  # every process seen in the server's tree


class ServerFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Prepared:
    """A server with everything needed to start it: its interpreter's folders and its environment."""

    server: Server
    bin_path: Path
    libdir: str
    env: dict[str, str]


def bin_dir(server: Server, plan: Plan) -> Path:
    if server.venv is None:
        return Path(sys.executable).parent
    path = plan.peers_dir / server.venv / "bin"
    if not (path.parent / ".installed").exists():
        raise ServerFailed(f"no virtual environment {path.parent} (make bench-peers creates it)")
    return path


def versions(python: Path) -> dict[str, str]:
    """Versions of the packages that matter, as installed where ``python`` runs."""
    code = (
        "import importlib.metadata as m, json, platform, sysconfig\n"
        "v = {'python': platform.python_version(), 'libdir': sysconfig.get_config_var('LIBDIR')}\n"
        f"for p in {PACKAGES!r}:\n"
        "    try: v[p] = m.version(p)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(v))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return dict(json.loads(out.stdout))


def server_env(
    server: Server, bin_path: Path, artifact_dir: Path, model_dir: Path, plan: Plan
) -> dict[str, str]:
    """The caller's environment without its LNSERVE_* settings, plus what every server needs."""
    env = clean_env({ARTIFACT_ENV: str(artifact_dir), THREADS_ENV: str(plan.threads), **QUIET})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(bin_path), env.get("PATH", "")])
    env["LNSERVE_MODEL_DIR"] = str(model_dir)
    if plan.threads:
        env["LNSERVE_INTRA_OP_THREADS"] = str(plan.threads)
    if server.venv is not None:
        env["VIRTUAL_ENV"] = str(bin_path.parent)
    return env


def post(conn: http.client.HTTPConnection, path: str, payload: Any) -> tuple[int, Any]:
    conn.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    return response.status, json.loads(body) if response.status == 200 else body[:300]


def wait_first_200(tree: Tree, url: str, payload: Any, timeout_s: float, log: Path) -> float:
    """Seconds from the server's process start to its first 200 on a chat request. Answers other than 200 while
    it starts (404 before a route exists, 400 or 503 while a model loads) are retried; 405, 415 and 422 say the
    request itself is wrong, so they end the wait at once."""
    data = json.dumps(payload).encode()
    last = "no answer"
    while True:
        if not tree.alive():
            raise ServerFailed(f"exited with {tree.proc.returncode} before answering:\n{tail(log)}")
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    return time.monotonic() - tree.started
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
            if exc.code in (405, 415, 422):
                raise ServerFailed(f"the first request was refused: {last}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        if time.monotonic() - tree.started > timeout_s:
            raise ServerFailed(f"no 200 within {timeout_s:g} s (last: {last}):\n{tail(log)}")
        time.sleep(0.05)


def tail(log: Path, chars: int = 2500) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def check(server: Server, port: int, messages: list[str], expected: list[str]) -> list[dict[str, str]]:
    """Each message alone, in turn: the server's intent must be the shared pipeline's."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    mismatches = []
    try:
        for message, want in zip(messages, expected, strict=True):
            status, answer = post(conn, server.path, server.body(message))
            got = server.intent(answer) if status == 200 else f"HTTP {status}: {answer!r}"
            if got != want:
                mismatches.append({"message": message, "expected": want, "got": got})
    finally:
        conn.close()
    return mismatches


@contextmanager
def started(ready: Prepared, log: Path, problems: list[str]) -> Iterator[tuple[Tree, list[int]]]:
    """The server's process tree on fresh ports; on the way out, however it is left, the whole tree is stopped and
    its ports checked free (what went wrong there is appended to ``problems``)."""
    ports = free_ports(ready.server.ports)
    command, extra = ready.server.render(str(ready.bin_path), ready.libdir, HOST, ports)
    tree = Tree(command, {**ready.env, **extra}, ROOT, log)
    try:
        yield tree, ports
    finally:
        survivors = tree.stop()
        if survivors:
            problems.append(f"processes {survivors} survived SIGKILL")
        deadline = time.monotonic() + 10
        while (busy := [p for p in ports if not port_is_free(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if busy:
            problems.append(f"ports {busy} still in use after the stop")


def run_session(
    ready: Prepared, round_: int, plan: Plan, messages: list[str], expected: list[str]
) -> Session:
    server, session = ready.server, Session(round_, os.getloadavg()[0])
    log = plan.out / "logs" / f"{server.name.replace(' ', '-')}-r{round_}.log"
    bodies = [json.dumps(server.body(m)) for m in messages]
    problems: list[str] = []
    tree: Tree | None = None
    try:
        with started(ready, log, problems) as (tree, ports):
            url = f"http://{HOST}:{ports[0]}"
            first = server.body(messages[0])
            session.cold_start_s = wait_first_200(tree, url + server.path, first, server.start_timeout_s, log)
            if server.model:
                session.mismatches = check(server, ports[0], messages, expected)
                session.checked = len(messages)
                if session.mismatches:
                    raise ServerFailed(f"{len(session.mismatches)} of {len(messages)} intents differ")
            time.sleep(plan.settle_s)
            session.idle_rss, session.idle_processes = tree.rss()
            if plan.warmup_s:
                run_wrk(url + server.path, bodies, 16, plan.warmup_s)
            tree.start_sampling()
            for c in plan.concurrency:
                before = batch_totals(url) if server.batch_metrics else None
                session.loads[c] = vars(run_wrk(url + server.path, bodies, c, plan.seconds))
                after = batch_totals(url) if before else None
                if before and after and after[1] > before[1]:
                    session.mean_batch[c] = (after[0] - before[0]) / (after[1] - before[1])
            session.loaded_rss = tree.peak()
            session.loaded_processes = len(tree.current())
    except (ServerFailed, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        session.failure = str(exc)
    session.stop_failure = "; ".join(problems)
    session.pids = sorted(tree.seen) if tree is not None else []
    return session


def model_dir_with(artifact_dir: Path, name: str, into: Path) -> Path:
    """A model folder holding the default chatbot artifact alone (a link to it), so lnserve loads what the peers
    load: one artifact, not every model of the repository."""
    artifacts = into / "models" / "chatbot" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / name).symlink_to(artifact_dir)
    (artifacts / "aliases.json").write_text(json.dumps({"chatbot": name}), encoding="utf-8")
    return into / "models"


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (a CI time-out, ``kill``) becomes an exit while the benchmark runs, so the server being measured is
    stopped on the way out (a background job ignores SIGINT)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def prepare(
    servers: list[Server], plan: Plan, artifact_dir: Path, model_dir: Path, results: dict[str, Any]
) -> dict[str, Prepared]:
    """Each server's interpreter, versions and environment; one whose environment is missing is marked failed."""
    prepared = {}
    for server in servers:
        entry = results["servers"][server.name] = {"sessions": [], "versions": {}, "failure": ""}
        try:
            bin_path = bin_dir(server, plan)
            entry["versions"] = versions(bin_path / "python")
            libdir = entry["versions"].pop("libdir")
            env = server_env(server, bin_path, artifact_dir, model_dir, plan)
            prepared[server.name] = Prepared(server, bin_path, libdir, env)
        except (ServerFailed, subprocess.SubprocessError, OSError) as exc:
            entry["failure"] = str(exc)
            print(f"{server.name}: skipped: {exc}", file=sys.stderr)
    return prepared


def run(
    servers: list[Server], plan: Plan, artifact_dir: Path, name: str, messages: list[str]
) -> dict[str, Any]:
    """Every server over every round; returns the raw figures (``report.py`` turns them into tables)."""
    (plan.out / "logs").mkdir(parents=True, exist_ok=True)
    reference = ChatPipeline(artifact_dir, plan.threads)
    expected = [answer["intent"] for m in messages for answer in reference([m])]
    results: dict[str, Any] = {"servers": {}}
    with tempfile.TemporaryDirectory(prefix="lnserve-peers-") as tmp, sigterm_as_exit():
        prepared = prepare(
            servers, plan, artifact_dir, model_dir_with(artifact_dir, name, Path(tmp)), results
        )
        for r in range(plan.rounds):
            for server in servers[r % len(servers) :] + servers[: r % len(servers)]:
                entry = results["servers"][server.name]
                if entry["failure"]:
                    continue
                session = run_session(prepared[server.name], r, plan, messages, expected)
                entry["sessions"].append(vars(session))
                if session.failure and not session.loads:
                    entry["failure"] = session.failure  # did not start, or answered wrong: not timed again
                print(progress(server.name, plan, session), file=sys.stderr, flush=True)
    return results


def progress(name: str, plan: Plan, s: Session) -> str:
    loads = ", ".join(
        f"c={c} {(x['requests'] - x['errors']) / x['seconds']:.0f} req/s ({x['errors']} err)"
        for c, x in s.loads.items()
    )
    where = f"[round {s.round + 1}/{plan.rounds}] {name}: start {s.cold_start_s:.1f} s, {s.idle_rss / 2**20:.0f} MiB"
    failed = "".join(
        f"; {what}: {text}" for what, text in (("FAILED", s.failure), ("STOP", s.stop_failure)) if text
    )
    return f"{where}; {loads}{failed}"
