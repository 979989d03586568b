"""lnserve against itself: settings or checkouts side by side, in short alternating bursts, as paired ratios.

On a shared 2-core machine the speed drifts by ±30% over minutes, which buries a 10% change between two servers
measured one after the other. Here every server is started at once and stays up; each round sends a short wrk
burst to each in turn (the order reversed every other round), and each variant's req/s is divided by the first
variant's of the same round. The median of those paired ratios is the result; the range shows the noise.

    .venv/bin/python -m bench.ab --concurrency 1 64 --variant base:LNSERVE_INLINE_WHEN_IDLE=false --variant new:
    # an older checkout (git worktree add /tmp/base <commit>) against this one:
    .venv/bin/python -m bench.ab --concurrency 1 16 64 --variant base@/tmp/base: --variant new:

A variant is ``NAME[@CHECKOUT]:[LNSERVE_X=v,...]``. For ``/v1/chat`` (the default ``--endpoint``) every server
loads only the default chatbot artifact; for another kind's route, the repository's models.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.artifacts import default_artifact
from bench.bodies import bodies_for
from bench.peers.harness import model_dir_with
from bench.servers import ServerSpec, running
from bench.wrk import run_wrk

CHAT = "/v1/chat"


def parse_variant(text: str) -> ServerSpec:
    head, _, settings = text.partition(":")
    name, _, checkout = head.partition("@")
    env = dict(pair.split("=", 1) for pair in settings.split(",") if pair)
    return ServerSpec(name, env, cwd=Path(checkout) if checkout else None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", required=True, help="NAME[@CHECKOUT]:[LNSERVE_X=v,...]")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="per burst")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--endpoint", default=CHAT)
    args = parser.parse_args(argv)
    specs = [parse_variant(v) for v in args.variant]
    endpoint, bodies = args.endpoint, bodies_for(args.endpoint)
    with tempfile.TemporaryDirectory(prefix="lnserve-ab-") as tmp:
        if endpoint == CHAT:
            artifact = default_artifact("chatbot")  # the alias target, as bench.peers loads it
            models = str(model_dir_with(artifact.folder.resolve(), artifact.name, Path(tmp)))
            specs = [ServerSpec(s.name, {"LNSERVE_MODEL_DIR": models, **s.env}, cwd=s.cwd) for s in specs]
        with running(specs) as urls:
            for url in urls.values():
                run_wrk(url + endpoint, bodies, 16, 2)  # warm-up
            print(
                f"| c | variant | req/s (median) | p50 ms | / {specs[0].name} (paired median, range) | errors |"
            )
            print("|---|---|---|---|---|---|")
            for c in args.concurrency:
                loads: dict[str, list[tuple[float, float, int]]] = {s.name: [] for s in specs}
                for r in range(args.rounds):
                    for spec in specs if r % 2 == 0 else specs[::-1]:
                        load = run_wrk(urls[spec.name] + endpoint, bodies, c, args.seconds)
                        loads[spec.name].append((load.ok_per_s, load.p50_ms, load.errors))
                first = loads[specs[0].name]
                for spec in specs:
                    mine = loads[spec.name]
                    ratios = [a[0] / b[0] for a, b in zip(mine, first, strict=True)]
                    print(
                        f"| {c} | {spec.name} | {statistics.median(x[0] for x in mine):.0f} | "
                        f"{statistics.median(x[1] for x in mine):.2f} | {statistics.median(ratios):.2f}x "
                        f"({min(ratios):.2f}–{max(ratios):.2f}) | {sum(x[2] for x in mine)} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
