"""Reload under load: `wrk` at concurrency 32 on `/v1/chat` while the model is reloaded again and again, side by
side with the same load and no reload, in one run.

One `lnserve serve` in `LNSERVE_MODEL_CONTROL=explicit` mode serves model `chat` from a temporary repository whose
version folders hold the bundled chatbot graphs (`1/` = chatbot-post, `2/` = chatbot-peri). Each round runs `wrk`
twice for the same time, in alternating order: once steady, once while a control thread loads a new version, then
reloads it (warm-up on: sessions are built and warmed while the old ones serve), every `--every` seconds. Every
non-2xx answer, socket error or timeout counts as a failure.

    .venv/bin/python -m bench.reload_load [--seconds 10] [--rounds 2] [--every 1.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.bodies import bodies_for
from bench.servers import ROOT, ServerSpec, running
from bench.tables import dump_json, header, markdown_table
from bench.wrk import Load, require_wrk, run_wrk

BUNDLED = ROOT / "models" / "chatbot"
CONCURRENCY = 32


def version_folder(models: Path, version: str, source: str) -> None:
    folder = models / "chatbot" / "artifacts" / "chat" / version
    folder.mkdir(parents=True)
    sidecar = json.loads((BUNDLED / "artifacts" / source / "sidecar.json").read_text())
    sidecar["name"] = "chat"
    (folder / "sidecar.json").write_text(json.dumps(sidecar))
    for graph in ("fast.onnx", "diagnostic.onnx"):
        (folder / graph).symlink_to(BUNDLED / "artifacts" / source / graph)


def repository(root: Path) -> Path:
    models = root / "models"
    (models / "chatbot" / "artifacts").mkdir(parents=True)
    for shared in ("tokenizer.json", "intents.json"):
        (models / "chatbot" / shared).symlink_to(BUNDLED / shared)
    version_folder(models, "1", "chatbot-post")
    return models


def reloader(url: str, models: Path, stop: threading.Event, every_s: float, took: list[float]) -> None:
    """Load new versions (2, then 3), then keep reloading what serves."""
    while not stop.wait(every_s):
        version = max(int(p.name) for p in (models / "chatbot" / "artifacts" / "chat").iterdir()) + 1
        if version <= 3:
            version_folder(models, str(version), "chatbot-peri" if version % 2 else "chatbot-pre")
        started = time.perf_counter()
        request = urllib.request.Request(f"{url}/v2/repository/models/chat/load", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
        took.append(time.perf_counter() - started)


def under_reloads(
    url: str, models: Path, bodies: list[str], seconds: float, every_s: float
) -> tuple[Load, list[float]]:
    stop, took = threading.Event(), []
    thread = threading.Thread(target=reloader, args=(url, models, stop, every_s, took))
    thread.start()
    try:
        load = run_wrk(url + "/v1/chat", bodies, CONCURRENCY, seconds)
    finally:
        stop.set()
        thread.join()
    return load, took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--every", type=float, default=1.5, help="seconds between two loads")
    parser.add_argument("--json")
    args = parser.parse_args()
    require_wrk()
    bodies = [json.dumps({**json.loads(b), "model": "chat"}) for b in bodies_for("/v1/chat")]
    root = Path(tempfile.mkdtemp(prefix="lnserve-reload-"))
    try:
        models = repository(root)
        env = {
            "LNSERVE_MODEL_DIR": str(models),
            "LNSERVE_MODEL_CONTROL": "explicit",
            "LNSERVE_LOAD_MODELS": '["chat"]',
            "LNSERVE_REQUIRED_MODELS": '["chat"]',
            "LNSERVE_LOG_LEVEL": "WARNING",
        }
        rows, results = [], []
        with running([ServerSpec("lnserve", env)]) as urls:
            url = urls["lnserve"]
            for round_ in range(args.rounds):
                order = ["steady", "reloads"] if round_ % 2 == 0 else ["reloads", "steady"]
                measured: dict[str, Load] = {}
                took: list[float] = []
                for mode in order:
                    if mode == "steady":
                        measured[mode] = run_wrk(url + "/v1/chat", bodies, CONCURRENCY, args.seconds)
                    else:
                        measured[mode], took = under_reloads(url, models, bodies, args.seconds, args.every)
                steady, reloads = measured["steady"], measured["reloads"]
                results.append({"steady": vars(steady), "reloads": vars(reloads), "load_s": took})
                rows.append(
                    [
                        str(round_ + 1),
                        str(len(took)),
                        f"{sum(took) / max(1, len(took)):.2f}",
                        f"{reloads.requests} / {reloads.errors}",
                        f"{steady.requests} / {steady.errors}",
                        f"{reloads.ok_per_s / steady.ok_per_s:.2f}",
                        f"{reloads.p99_ms / steady.p99_ms:.2f}",
                    ]
                )
        print(header(f"Reload under load (c = {CONCURRENCY}, {args.seconds:g} s per run, POST /v1/chat)"))
        print(
            markdown_table(
                [
                    "round",
                    "loads",
                    "mean load s",
                    "requests / failed (reloads)",
                    "requests / failed (steady)",
                    "ok/s ratio",
                    "p99 ratio",
                ],
                rows,
            )
        )
        dump_json(args.json, {"concurrency": CONCURRENCY, "rounds": results})
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
