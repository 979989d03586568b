"""docs/peers.png: req/s (2xx) by concurrency for every server of a peer-benchmark run (its ``peers.json``).

    .peers/chart/bin/python -m bench.peers.chart bench/peers/results/peers.json docs/peers.png

Runs in its own small environment (matplotlib only; ``make bench-peers-chart``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

from bench.peers.report import BASE, CEILING, summarise

matplotlib.use("Agg")  # no display: a file only
import matplotlib.pyplot as plt


def draw(results: dict[str, Any], out: Path) -> None:
    summary = summarise(results)
    meta = results["meta"]
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    for name, by_c in summary.items():
        if not by_c:
            continue
        cs = sorted(by_c)
        style = {"linewidth": 3.0, "zorder": 3} if name == BASE else {"linewidth": 1.6}
        if name == CEILING:
            style = {"linestyle": "--", "color": "grey", "linewidth": 1.4}
        ax.plot(cs, [by_c[c]["ok_per_s"] for c in cs], marker="o", label=name, **style)
    all_cs = sorted({c for by_c in summary.values() for c in by_c})
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(all_cs, [str(c) for c in all_cs])
    ax.set_xlabel("concurrent connections (wrk -t1, closed loop)")
    ax.set_ylabel("requests per second answered 200 (log)")
    rounds = meta["plan"]["rounds"]
    ax.set_title(
        f"POST chat intent: the same model, tokenizer and decision behind every server\n"
        f"medians over {rounds} round(s), one run, {meta['date']}; load average {meta.get('load_avg', '?')}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.text(0.01, 0.01, "Shared machine: compare servers within this run, not with other runs.", fontsize=7)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, help="peers.json of a run")
    parser.add_argument("out", type=Path, help="the PNG to write")
    args = parser.parse_args()
    draw(json.loads(args.results.read_text(encoding="utf-8")), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
