"""Stage `fp16`: the service's own runtimes on the GPU (fp32 and fp16, CUDA graphs captured at warm-up, as served)
against the fp32 runtime on the CPU, over each kind's benchmark bodies (for the chatbot: its whole validation
split). Answers compared output by output as the KServe v2 surface returns them: text outputs (the intent) must be
identical, float outputs within `precision.FP16_TOLERANCE` (fp16) or 1e-4 (fp32).

    python -m bench.gpu.fp16 --json fp16.json
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.artifacts import KINDS
from bench.gpu.common import Results, artifacts, require_cuda, stage_args
from models.sidecar import FAST
from service.errors import LnserveError
from service.kinds import AnyKind, Job
from service.runtime.base import Runtime, RuntimeOptions
from service.runtime.precision import relative_error

BODIES = 1024  # the chatbot's bench bodies are its validation utterances (509 now): all of them come back
BATCH = 32


def outputs(
    kind: AnyKind, runtime: Runtime[Any, Any], jobs: list[Job[Any]]
) -> list[dict[str, np.ndarray] | str]:
    """Per job: every declared output, or the error one of its items got (batches of BATCH, the last one padded on
    CUDA)."""
    items = [item for job in jobs for item in job.items]
    outcomes = [
        o
        for start in range(0, len(items), BATCH)
        for o in runtime.predict(items[start : start + BATCH], False)
    ]
    answers: list[dict[str, np.ndarray] | str] = []
    for job in jobs:
        mine, outcomes = outcomes[: len(job.items)], outcomes[len(job.items) :]
        errors = [str(o) for o in mine if isinstance(o, LnserveError)]
        predictions = [o for o in mine if not isinstance(o, LnserveError)]
        answers.append(errors[0] if errors else kind.to_tensors(runtime, job, predictions))
    return answers


def compare(
    reference: list[dict[str, np.ndarray] | str], other: list[dict[str, np.ndarray] | str]
) -> dict[str, Any]:
    """Text outputs: how many rows are identical; float outputs: the relative error; over the jobs both answered."""
    both = [
        (r, o)
        for r, o in zip(reference, other, strict=True)
        if not isinstance(r, str) and not isinstance(o, str)
    ]
    out: dict[str, Any] = {
        "errors": {
            "reference": sum(isinstance(r, str) for r in reference),
            "this": sum(isinstance(o, str) for o in other),
        }
    }
    for name in both[0][0] if both else []:
        ref = np.concatenate([r[name] for r, _ in both])
        got = np.concatenate([o[name] for _, o in both])
        if ref.dtype == np.object_:
            out[name] = {"identical": int((ref == got).sum()), "of": len(ref)}
        else:
            out[name] = {"rel_error": relative_error([ref], [got])}
    return out


def main() -> None:
    args = stage_args(__doc__)
    require_cuda()
    results = Results(args.json)
    for artifact in artifacts(args.kinds):
        kind = KINDS[artifact.kind]
        runtimes = {
            "CPU fp32": kind.runtime(artifact, RuntimeOptions("cpu")),
            "CUDA fp32": kind.runtime(artifact, RuntimeOptions("cuda", precision="fp32")),
            "CUDA fp16": kind.runtime(artifact, RuntimeOptions("cuda", precision="fp16")),
        }
        loaded: dict[str, dict[str, Any]] = {}
        for label, runtime in runtimes.items():
            started = time.perf_counter()
            runtime.load()
            loaded[label] = {
                "load_s": time.perf_counter() - started,
                "warmup_s": runtime.warmup([1, BATCH])
                if label.startswith("CUDA")
                else 0.0,  # captures graphs
                "precision": runtime.precision,
                "load_parity": getattr(runtime, "precision_error", None),
                "graphs": len(getattr(runtime.sessions[FAST], "graphs", {})),
            }
        bodies = [kind.route.request.model_validate(b) for b in kind.bench_bodies(BODIES)]
        jobs = [kind.parse(runtimes["CPU fp32"], body) for body in bodies]
        reference = outputs(kind, runtimes["CPU fp32"], jobs)
        for label in ("CUDA fp32", "CUDA fp16"):
            results.append(
                "rows",
                {
                    "model": artifact.name,
                    "runtime": label,
                    "items": sum(len(job.items) for job in jobs),
                    "outputs": compare(reference, outputs(kind, runtimes[label], jobs)),
                    **loaded[label],
                },
            )


if __name__ == "__main__":
    main()
