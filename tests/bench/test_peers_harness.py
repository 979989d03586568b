"""The peer benchmark's harness (bench/peers): a one-second run of lnserve against the hand-written endpoint (both
from the project's own environment; the peers' environments are `make bench-peers`'s), and the process-tree stop
that keeps a benchmark from leaving servers behind."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.artifacts import KINDS, default_artifact
from bench.peers.harness import Plan, run
from bench.peers.pipeline import MAX_BATCH_SIZE, MAX_WAIT_S
from bench.peers.process import Tree
from bench.peers.report import markdown, summarise
from bench.peers.servers import BY_NAME

ROOT = Path(__file__).resolve().parents[2]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="needs wrk (scripts/ensure-wrk.sh; make test installs it)"
)
def test_a_one_second_run_checks_intents_counts_requests_and_leaves_no_process_or_port_behind(
    tmp_path: Path,
) -> None:
    artifact = default_artifact("chatbot")
    messages = [body["message"] for body in KINDS["chatbot"].bench_bodies(8)]
    plan = Plan([1], seconds=1, rounds=1, warmup_s=0, threads=1, peers_dir=tmp_path, out=tmp_path, settle_s=0)
    servers = [BY_NAME["lnserve"], BY_NAME["hand-written"]]

    results = run(servers, plan, artifact.folder, artifact.name, messages)

    for name in ("lnserve", "hand-written"):
        entry = results["servers"][name]
        (session,) = entry["sessions"]
        assert (entry["failure"], session["failure"], session["stop_failure"]) == ("", "", ""), name
        assert session["checked"] == len(messages) and session["mismatches"] == []
        load = session["loads"][1]
        assert load["requests"] > 0 and load["errors"] == 0
        assert 0 < session["cold_start_s"] < 120
        assert session["idle_rss"] > 30 * 2**20 and session["loaded_rss"] >= session["idle_rss"] * 0.9
        assert session["pids"] and not any(running(pid) for pid in session["pids"])
    assert results["servers"]["lnserve"]["sessions"][0]["mean_batch"][1] == pytest.approx(1.0)
    summary = summarise(json.loads(json.dumps(results)))  # as the chart reads it back
    assert summary["lnserve"][1]["ok_per_s"] > 0 and summary["hand-written"][1]["ok_per_s"] > 0
    meta = {"date": "today", "machine": "here", "command": "test", "description": "smoke", "pipeline_ms": 0.2}
    text = markdown(results, meta)
    assert "| c | lnserve | hand-written |" in text.replace("  ", " ")
    assert "c = 1: lnserve / hand-written = " in text


def test_stopping_a_tree_ends_a_child_that_left_its_session_and_outlived_its_parent(tmp_path: Path) -> None:
    release = tmp_path / "release"
    code = (
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.02)\n"
    )
    tree = Tree([sys.executable, "-c", code], dict(os.environ), tmp_path, tmp_path / "log")
    wait_for(lambda: len(tree.current()) == 2)
    (child,) = set(tree.seen) - {tree.proc.pid}
    release.touch()
    wait_for(lambda: tree.proc.poll() is not None)  # the parent is gone; its child lives on, re-parented
    assert running(child) and child not in tree.current()

    assert tree.stop(grace_s=5) == []
    assert not running(child)


def test_mlserver_batches_like_every_other_batching_server() -> None:
    settings = json.loads((ROOT / "bench/peers/apps/mlserver/chatbot/model-settings.json").read_text())
    assert (settings["max_batch_size"], settings["max_batch_time"]) == (MAX_BATCH_SIZE, MAX_WAIT_S)
