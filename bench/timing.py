"""Side-by-side timing: candidates take turns in short blocks so that machine noise hits every one alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def calls_per_block(fn: Callable[[], object], block_s: float) -> int:
    """How many calls of ``fn`` fill about ``block_s`` seconds (at least 1); also warms ``fn`` up."""
    for _ in range(3):
        fn()
    start = time.perf_counter()
    fn()
    one = time.perf_counter() - start
    return max(1, min(1000, int(block_s / max(one, 1e-6))))


def interleaved(
    candidates: dict[str, Callable[[], object]], seconds: float, block_s: float = 0.05, min_rounds: int = 5
) -> dict[str, list[float]]:
    """Per-call wall times (s) of each candidate, run in alternating blocks for about ``seconds`` in total.

    Every round runs each candidate for one block of ~``block_s``; the order rotates each round so no candidate
    always follows the same one.
    """
    names = list(candidates)
    blocks = {name: calls_per_block(fn, block_s) for name, fn in candidates.items()}
    times: dict[str, list[float]] = {name: [] for name in names}
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < min_rounds or time.perf_counter() < deadline:
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            fn = candidates[name]
            for _ in range(blocks[name]):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        rounds += 1
    return times


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def overhead_pct(base: float, other: float) -> float:
    """How much slower ``other`` is than ``base``, in percent (negative: faster)."""
    return (other / base - 1.0) * 100.0
