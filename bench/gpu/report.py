"""The GPU check's report: the merged results of every stage as Markdown, targets first (met / missed / not measured).

python -m bench.gpu.report results.json > report.md
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bench.gpu.common import SERVED_VARIANT
from bench.tables import markdown_table
from service.runtime.precision import FP16_TOLERANCE

B1_P50_MS = 0.3
SERVICE_C1_P50_MS = 2.0


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    status: str  # met | missed | not measured


def _rows(results: dict[str, Any], stage: str, key: str = "rows") -> list[dict[str, Any]]:
    return list(results.get(stage, {}).get(key, []))


def _status(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "missed")


def target_b1(results: dict[str, Any]) -> Target:
    rows = [r for r in _rows(results, "latency") if r["kind"] == "chatbot" and r["batch"] == 1]
    served = [r for r in rows if r["variant"] == SERVED_VARIANT]
    name = f"chatbot model p50 <= {B1_P50_MS} ms at batch 1 ({SERVED_VARIANT}, every length bucket)"
    if not served:
        return Target(name, "-", "not measured")
    worst = max(served, key=lambda r: r["p50_ms"])
    each = ", ".join(f"{r['shape']}: {r['p50_ms']:.3f}" for r in served)
    return Target(name, f"worst {worst['p50_ms']:.3f} ms ({each})", _status(worst["p50_ms"] <= B1_P50_MS))


def target_compile(results: dict[str, Any]) -> Target:
    rows = [
        r
        for r in _rows(results, "compile")
        if r["kind"] == "chatbot" and r["batch"] == 32 and r["mode"] == "default"
    ]
    name = "ORT CUDA >= torch.compile at batch 32 (chatbot, every length bucket, side by side)"
    if not rows:
        return Target(name, "-", "not measured")
    each = ", ".join(f"{r['shape']}: {r['compiled_p50_ms'] / r['ort_p50_ms']:.2f}x" for r in rows)
    ok = all(r["ort_p50_ms"] <= r["compiled_p50_ms"] for r in rows)
    return Target(name, f"torch.compile time / ORT time: {each}", _status(ok))


def target_service(results: dict[str, Any]) -> Target:
    rows = [
        r
        for r in _rows(results, "load")
        if r["server"] == "GPU" and r["c"] == 1 and r["endpoint"] == "/v1/chat"
    ]
    name = f"service end to end p50 <= {SERVICE_C1_P50_MS:g} ms at c = 1 (POST /v1/chat, GPU)"
    if not rows:
        return Target(name, "-", "not measured")
    p50 = rows[0]["p50_ms"]
    return Target(name, f"{p50:.2f} ms ({rows[0]['ok_per_s']:.0f} req/s)", _status(p50 <= SERVICE_C1_P50_MS))


def target_fp16(results: dict[str, Any]) -> Target:
    parity = [r for r in _rows(results, "latency", "parity") if "fp16" in r["variant"]]
    served = [
        (r["model"], name, o["rel_error"])
        for r in _rows(results, "fp16")
        if r["runtime"] == "CUDA fp16"
        for name, o in r["outputs"].items()
        if "rel_error" in o
    ]
    errors = [r["rel_error"] for r in parity] + [e for _, _, e in served]
    name = f"fp16 parity: max |fp16 - fp32| / max |fp32| <= {FP16_TOLERANCE:g} on every output"
    if not errors:
        return Target(name, "-", "not measured")
    return Target(
        name,
        f"worst {max(errors):.1e} over {len(errors)} comparisons",
        _status(max(errors) <= FP16_TOLERANCE),
    )


def target_intents(results: dict[str, Any]) -> Target:
    rows = [
        (r["model"], r["outputs"]["intent"])
        for r in _rows(results, "fp16")
        if r["runtime"] == "CUDA fp16" and "intent" in r["outputs"]
    ]
    name = "fp16 gives identical intents on the validation set"
    if not rows:
        return Target(name, "-", "not measured")
    each = ", ".join(f"{m}: {o['identical']}/{o['of']}" for m, o in rows)
    return Target(name, each, _status(all(o["identical"] == o["of"] for _, o in rows)))


def targets(results: dict[str, Any]) -> list[Target]:
    return [
        target_b1(results),
        target_compile(results),
        target_service(results),
        target_fp16(results),
        target_intents(results),
    ]


def _table(headers: list[str], rows: Iterable[list[str]]) -> str:
    body = list(rows)
    return markdown_table(headers, body) if body else "_no rows_"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def latency_tables(results: dict[str, Any]) -> str:
    rows = _rows(results, "latency")
    parts = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        variants = list(dict.fromkeys(r["variant"] for r in mine))
        cells: dict[tuple[int, str], dict[str, float]] = {}
        for r in mine:
            cells.setdefault((r["batch"], r["shape"]), {})[r["variant"]] = r["p50_ms"]
        table = [
            [
                str(b),
                shape,
                *(_ms(v.get(x)) for x in variants),
                _ratio(v, "torch eager + CUDA graph", SERVED_VARIANT),
            ]
            for (b, shape), v in cells.items()
        ]
        head = ["batch", "input", *(f"{v} p50 ms" for v in variants), f"torch graph / {SERVED_VARIANT}"]
        parts.append(f"### {model}\n\n{_table(head, table)}")
    return "\n\n".join(parts) or "_not measured_"


def _ratio(values: dict[str, float], numerator: str, denominator: str) -> str:
    if numerator in values and denominator in values and values[denominator] > 0:
        return f"{values[numerator] / values[denominator]:.2f}x"
    return "-"


def parity_table(results: dict[str, Any]) -> str:
    worst: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in _rows(results, "latency", "parity"):
        key = (r["model"], r["output"], r["variant"])
        if key not in worst or r["rel_error"] > worst[key]["rel_error"]:
            worst[key] = r
    return _table(
        ["model", "output", "variant", "worst rel. error", "max abs", "at", "within tolerance"],
        (
            [
                m,
                o,
                v,
                f"{r['rel_error']:.1e}",
                f"{r['max_abs']:.1e}",
                f"{r['data']} {r['shape']}",
                "yes" if r["ok"] else "NO",
            ]
            for (m, o, v), r in worst.items()
        ),
    )


def compile_table(results: dict[str, Any]) -> str:
    return _table(
        [
            "model",
            "batch",
            "input",
            "mode",
            "compile s",
            "compiled p50 ms",
            "eager p50 ms",
            "ORT p50 ms",
            "compiled / ORT",
            "rel. error",
        ],
        (
            [
                r["model"],
                str(r["batch"]),
                r["shape"],
                r["mode"],
                f"{r['compile_s']:.1f}",
                _ms(r["compiled_p50_ms"]),
                _ms(r["eager_p50_ms"]),
                _ms(r["ort_p50_ms"]),
                f"{r['compiled_p50_ms'] / r['ort_p50_ms']:.2f}x",
                f"{r['rel_error']:.1e}",
            ]
            for r in _rows(results, "compile")
        ),
    )


def fp16_table(results: dict[str, Any]) -> str:
    def describe(outputs: dict[str, Any]) -> str:
        parts = []
        for name, o in outputs.items():
            if "identical" in o:
                parts.append(f"{name}: {o['identical']}/{o['of']} identical")
            elif "rel_error" in o:
                parts.append(f"{name}: {o['rel_error']:.1e}")
            elif name == "errors" and any(o.values()):
                parts.append(f"items failed: {o['reference']} on the CPU, {o['this']} here")
        return "; ".join(parts)

    return _table(
        ["model", "runtime", "items", "served as", "load parity", "graphs", "warm-up s", "against CPU fp32"],
        (
            [
                r["model"],
                r["runtime"],
                str(r["items"]),
                r["precision"],
                "-" if r["load_parity"] is None else f"{r['load_parity']:.1e}",
                str(r["graphs"]),
                f"{r['warmup_s']:.1f}",
                describe(r["outputs"]),
            ]
            for r in _rows(results, "fp16")
        ),
    )


def load_table(results: dict[str, Any]) -> str:
    rows = _rows(results, "load")
    cpu = {(r["endpoint"], r["c"]): r["ok_per_s"] for r in rows if r["server"] == "CPU"}
    return _table(
        [
            "endpoint",
            "c",
            "server",
            "req/s (2xx)",
            "p50 ms",
            "p99 ms",
            "errors",
            "mean batch",
            "req/s vs CPU",
        ],
        (
            [
                r["endpoint"],
                str(r["c"]),
                r["server"],
                f"{r['ok_per_s']:.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                str(r["errors"]),
                f"{r['mean_batch']:.1f}" if "mean_batch" in r else "-",
                f"{r['ok_per_s'] / cpu[(r['endpoint'], r['c'])]:.2f}x"
                if cpu.get((r["endpoint"], r["c"]))
                else "-",
            ]
            for r in rows
        ),
    )


def memory_section(results: dict[str, Any]) -> str:
    lines = [f"- models (stage `latency`): `{json.dumps(results.get('latency', {}).get('memory', {}))}`"]
    for when in ("after_start", "after_load"):
        gauges = results.get("load", {}).get(when, {}).get("GPU", {})
        if gauges:
            lines.append(f"- service on the GPU, {when.replace('_', ' ')}: `{json.dumps(gauges)}`")
    return "\n".join(lines)


def _section(title: str, draw: Callable[[dict[str, Any]], str], results: dict[str, Any]) -> str:
    """One section; a section whose results are malformed (a stage cut mid-way) says so instead of sinking the
    report."""
    try:
        body = draw(results)
    except Exception as exc:
        body = f"_could not be drawn from results.json: {exc!r}_"
    return f"## {title}\n\n{body}\n"


def _targets(results: dict[str, Any]) -> str:
    return _table(
        ["target", "measured", "status"], ([t.name, t.measured, t.status] for t in targets(results))
    )


def _load(results: dict[str, Any]) -> str:
    runtimes = results.get("load", {}).get("runtimes", {})
    logged = "\n".join(f"- {server}: {'; '.join(lines)}" for server, lines in runtimes.items())
    return f"{load_table(results)}\n\n{logged}"


def _smoke_and_tests(results: dict[str, Any]) -> str:
    smoke = json.dumps(results.get("env", {}).get("cuda_smoke", []))
    return f"`{smoke}`\n\npytest -m gpu: `{results.get('tests', {}).get('summary', 'not run')}`"


SECTIONS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("Targets", _targets),
    ("Model latency (host to host, p50 ms)", latency_tables),
    ("Parity against ORT on the CPU (fp32)", parity_table),
    ("torch.compile", compile_table),
    (
        "The service's runtimes on the validation bodies (fp16 and fp32 on CUDA vs fp32 on the CPU)",
        fp16_table,
    ),
    ("The service under load: GPU vs the same machine's CPU cores", _load),
    ("GPU memory", memory_section),
    ("CUDA smoke test and GPU tests", _smoke_and_tests),
]


def render(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    env = results.get("env", {})
    smi = env.get("nvidia_smi", {})
    stages = results.get("stages", {})
    head = [
        f"# GPU check: {smi.get('name', 'unknown device')}, {meta.get('started', '?')}",
        "",
        f"Command: `{meta.get('command', '?')}`; commit {meta.get('commit', '?')}; budget {meta.get('seconds', '?')} s.",
        f"Versions: `{json.dumps(env.get('versions', {}))}`; nvidia-smi: `{json.dumps(smi)}`.",
        "",
        _table(
            ["stage", "status", "seconds", "note"],
            ([n, s["status"], f"{s.get('seconds', 0):.0f}", s.get("note", "")] for n, s in stages.items()),
        ),
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(_section(title, draw, results) for title, draw in SECTIONS)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        print(render(json.load(handle)))


if __name__ == "__main__":
    main()
