"""The peer benchmark's tables (Markdown, pasted into docs/benchmarks.md) from the raw figures ``harness.run``
returns: medians over rounds, ratios to lnserve and to the no-op ceiling, memory, cold start, the issue's targets."""

from __future__ import annotations

import statistics
from typing import Any

from bench.tables import load_cells, markdown_table

MiB = 2**20
BASE, CEILING, HAND = "lnserve", "no-op", "hand-written"
NOT_PEERS = {BASE, CEILING}


def ok_per_s(load: dict[str, float]) -> float:
    return max(0.0, load["requests"] - load["errors"]) / load["seconds"]


def points(entry: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per concurrency: medians over rounds of req/s (2xx), p50 and p99; errors and rounds summed."""
    by_c: dict[int, list[dict[str, float]]] = {}
    for session in entry["sessions"]:
        for c, load in session["loads"].items():
            by_c.setdefault(int(c), []).append(load)
    return {
        c: {
            "ok_per_s": statistics.median(ok_per_s(x) for x in loads),
            "p50_ms": statistics.median(x["p50_ms"] for x in loads),
            "p99_ms": statistics.median(x["p99_ms"] for x in loads),
            "errors": sum(x["errors"] for x in loads),
            "requests": sum(x["requests"] for x in loads),
            "rounds": len(loads),
        }
        for c, loads in sorted(by_c.items())
    }


def summarise(results: dict[str, Any]) -> dict[str, dict[int, dict[str, float]]]:
    return {name: points(entry) for name, entry in results["servers"].items()}


def _ratio(a: float | None, b: float | None, fmt: str = "{:.2f}x") -> str:
    return fmt.format(a / b) if a is not None and b else "-"


def _get(summary: dict[str, dict[int, dict[str, float]]], name: str, c: int, key: str) -> float | None:
    return summary.get(name, {}).get(c, {}).get(key)


def throughput_table(summary: dict[str, dict[int, dict[str, float]]]) -> str:
    names = list(summary)
    cs = sorted({c for by_c in summary.values() for c in by_c})
    rows = []
    for c in cs:
        cells = [f"{v:.0f}" if (v := _get(summary, n, c, "ok_per_s")) is not None else "-" for n in names]
        rows.append([str(c), *cells])
    return markdown_table(["c", *names], rows)


def relative_table(summary: dict[str, dict[int, dict[str, float]]]) -> str:
    names = [n for n in summary if n != BASE]
    cs = sorted({c for by_c in summary.values() for c in by_c})
    rows = []
    for c in cs:
        base = _get(summary, BASE, c, "ok_per_s")
        rows.append([str(c), *(_ratio(base, _get(summary, n, c, "ok_per_s")) for n in names)])
    return markdown_table(["c", *(f"lnserve / {n}" for n in names)], rows)


def detail_table(results: dict[str, Any], summary: dict[str, dict[int, dict[str, float]]]) -> str:
    rows = []
    cs = sorted({c for by_c in summary.values() for c in by_c})
    for c in cs:
        base, ceiling = _get(summary, BASE, c, "ok_per_s"), _get(summary, CEILING, c, "ok_per_s")
        for name, by_c in summary.items():
            if c not in by_c:
                continue
            r = by_c[c]
            sessions = results["servers"][name]["sessions"]
            batches = [b for s in sessions for k, b in s["mean_batch"].items() if int(k) == c]
            rows.append(
                [
                    *load_cells(c, name, r),
                    f"{r['errors']:.0f} / {r['requests']:.0f}",
                    _ratio(r["ok_per_s"], base),
                    _ratio(r["ok_per_s"], ceiling, "{:.1%}"),
                    f"{statistics.median(batches):.1f}" if batches else "-",
                ]
            )
    headers = [
        "c",
        "server",
        "req/s (2xx)",
        "p50 ms",
        "p99 ms",
        "errors / requests",
        "vs lnserve",
        "vs no-op",
    ]
    return markdown_table([*headers, "mean batch"], rows)


def _span(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    mid = fmt.format(statistics.median(values))
    return mid if len(values) == 1 else f"{mid} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def servers_table(results: dict[str, Any]) -> str:
    rows = []
    for name, entry in results["servers"].items():
        sessions = [s for s in entry["sessions"] if s["cold_start_s"]]
        versions = entry["versions"]
        main = next((f"{p} {versions[p]}" for p in FRAMEWORK.get(name, ()) if p in versions), "")
        ort = versions.get("onnxruntime") or versions.get("onnxruntime-gpu") or "-"
        checked = sum(s["checked"] for s in entry["sessions"])
        wrong = sum(len(s["mismatches"]) for s in entry["sessions"])
        problems = [entry["failure"], *(s["failure"] or s["stop_failure"] for s in entry["sessions"])]
        rows.append(
            [
                name,
                main or "-",
                ort,
                _span([s["cold_start_s"] for s in sessions], "{:.1f}"),
                _span([s["idle_rss"] / MiB for s in sessions], "{:.0f}"),
                _span([s["loaded_rss"] / MiB for s in sessions if s["loaded_rss"]], "{:.0f}"),
                _span([float(s["idle_processes"]) for s in sessions], "{:.0f}"),
                f"{checked - wrong}/{checked}" if checked else "-",
                "; ".join(dict.fromkeys(p.splitlines()[0].strip() for p in problems if p)) or "-",
            ]
        )
    headers = [
        "server",
        "version",
        "onnxruntime",
        "cold start s",
        "idle RSS MiB",
        "loaded RSS MiB",
        "processes",
    ]
    return markdown_table([*headers, "same intent", "failures"], rows)


FRAMEWORK = {
    "lnserve": ("lnserve",),
    "hand-written": ("fastapi",),
    "no-op": ("fastapi",),
    "PyTriton": ("nvidia-pytriton",),
    "MLServer": ("mlserver",),
    "BentoML": ("bentoml",),
    "LitServe": ("litserve",),
    "Ray Serve": ("ray",),
}


def targets(summary: dict[str, dict[int, dict[str, float]]], pipeline_ms: float) -> str:
    """Issue 15's targets as this run measures them (parts 2-4 of the issue work towards them)."""
    lines = []
    base1, hand1 = _get(summary, BASE, 1, "ok_per_s"), _get(summary, HAND, 1, "ok_per_s")
    if base1 and hand1:
        lines.append(f"c = 1: lnserve / hand-written = {base1 / hand1:.2f}x (target >= 1.1x)")
    p50, noop50 = _get(summary, BASE, 1, "p50_ms"), _get(summary, CEILING, 1, "p50_ms")
    if p50 and noop50:
        bound = 1.3 * noop50 + pipeline_ms
        lines.append(
            f"c = 1: lnserve p50 {p50:.2f} ms vs 1.3 x no-op p50 ({noop50:.2f} ms) + the pipeline's own time"
            f" ({pipeline_ms:.2f} ms) = {bound:.2f} ms: {p50 / bound:.2f}x the bound (target <= 1x)"
        )
    base64, noop64 = _get(summary, BASE, 64, "ok_per_s"), _get(summary, CEILING, 64, "ok_per_s")
    if base64 and noop64:
        lines.append(f"c = 64: lnserve = {base64 / noop64:.1%} of the no-op ceiling (target >= 50%)")
    peers = {n: v for n in summary if n not in NOT_PEERS and (v := _get(summary, n, 64, "ok_per_s"))}
    if base64 and peers:
        best = max(peers, key=lambda n: peers[n])
        lines.append(f"c = 64: lnserve / best peer ({best}) = {base64 / peers[best]:.2f}x (target >= 2x)")
    errors = sum(p["errors"] for name in (BASE,) for p in summary.get(name, {}).values())
    lines.append(f"lnserve request errors: {errors:.0f} (target 0)")
    return "\n".join(f"- {line}" for line in lines)


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    summary = summarise(results)
    return "\n\n".join(
        [
            f"### Peer benchmark: {meta['date']}",
            meta["machine"],
            f"`{meta['command']}`: {meta['description']}",
            "#### req/s (2xx), medians over rounds\n\n" + throughput_table(summary),
            "#### lnserve's req/s over each server's (same run)\n\n" + relative_table(summary),
            "#### Every point\n\n" + detail_table(results, summary),
            "#### Start, memory (RSS of the whole process tree), correctness\n\n" + servers_table(results),
            "#### Issue 15's targets in this run\n\n" + targets(summary, meta["pipeline_ms"]),
        ]
    )
