"""On a CUDA GPU (skipped elsewhere, see conftest.py): the service's CUDA path answers as the CPU path does, with its
CUDA graphs, padded batches, fp16 graphs and NVML gauges. `bench/gpu/run.sh` runs these on the GPU host."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.artifacts import KINDS, bench_items, default_artifact
from models.sidecar import FAST
from service.metrics import Metrics
from service.runtime.base import RuntimeOptions
from service.runtime.precision import FP16_TOLERANCE, relative_error
from service.runtime.providers import CUDA
from service.runtime.sessions import CudaSession, graph_batch_sizes

pytestmark = pytest.mark.gpu
FP32_TOLERANCE = 1e-4  # the same fp32 arithmetic, summed in another order


def loaded(kind: str, providers: str, precision: str = "fp32", warm: bool = True) -> Any:
    runtime = KINDS[kind].runtime(default_artifact(kind), RuntimeOptions(providers, precision=precision))  # type: ignore[arg-type]
    runtime.load()
    if warm:
        runtime.warmup([1, 32])
    return runtime


@pytest.fixture(scope="module")
def chatbots() -> dict[str, Any]:
    return {"cpu": loaded("chatbot", "cpu"), "cuda": loaded("chatbot", "cuda")}


def logits(outcomes: list[Any]) -> list[np.ndarray]:
    return [np.stack([o.result.logits for o in outcomes])]


def test_the_chatbot_runs_on_cuda_with_a_graph_for_every_bucket_and_batch_size(
    chatbots: dict[str, Any],
) -> None:
    fast = chatbots["cuda"].sessions[FAST]
    assert isinstance(fast, CudaSession) and CUDA in fast.session.get_providers()
    assert len(fast.graphs) == len(chatbots["cuda"].buckets) * len(graph_batch_sizes(32))


@pytest.mark.parametrize("batch", [1, 3, 32])
def test_cuda_answers_validation_utterances_as_the_cpu_does(chatbots: dict[str, Any], batch: int) -> None:
    items = bench_items(chatbots["cpu"], batch)
    cpu, cuda = (chatbots[p].predict(items, False) for p in ("cpu", "cuda"))
    assert [o.result.intent for o in cuda] == [o.result.intent for o in cpu]
    assert relative_error(logits(cpu), logits(cuda)) <= FP32_TOLERANCE


def test_a_padded_batch_gives_each_row_the_answer_it_gets_alone(chatbots: dict[str, Any]) -> None:
    runtime = chatbots["cuda"]
    items = bench_items(runtime, 5)  # runs in the captured graph of 8 rows
    together = logits(runtime.predict(items, False))[0]
    alone = np.concatenate([logits(runtime.predict([item], False))[0] for item in items])
    assert relative_error([alone], [together]) <= FP32_TOLERANCE


def test_the_diagnostic_graph_on_cuda_gives_the_cpu_statistics(chatbots: dict[str, Any]) -> None:
    items = bench_items(chatbots["cpu"], 8)
    cpu, cuda = (chatbots[p].predict(items, True) for p in ("cpu", "cuda"))
    stats = [np.stack([o.activations for o in out]) for out in (cpu, cuda)]
    assert relative_error(stats[:1], stats[1:]) <= FP32_TOLERANCE


def test_the_captured_graph_and_plain_io_binding_agree_and_copy_back_only_what_is_asked(
    chatbots: dict[str, Any],
) -> None:
    runtime = chatbots["cuda"]
    fast: CudaSession = runtime.sessions[FAST]
    feeds = runtime.feeds(bench_items(runtime, 16))
    graphed = fast.run(feeds, ["logits"])
    plain = fast.run_bound(feeds, ["logits"])
    assert len(graphed) == len(plain) == 1 and graphed[0].shape == plain[0].shape == (16, len(runtime.labels))
    assert relative_error(plain, graphed) <= FP32_TOLERANCE


def test_fp16_on_cuda_passes_its_parity_gate_and_keeps_the_intents(chatbots: dict[str, Any]) -> None:
    half = loaded("chatbot", "cuda", "fp16")
    assert half.precision == "fp16" and half.precision_error <= FP16_TOLERANCE
    items = bench_items(chatbots["cpu"], 128)
    cpu, cuda = chatbots["cpu"].predict(items, False), half.predict(items, False)
    assert [o.result.intent for o in cuda] == [o.result.intent for o in cpu]
    assert relative_error(logits(cpu), logits(cuda)) <= FP16_TOLERANCE


def test_the_forecaster_runs_on_cuda_as_on_the_cpu() -> None:
    cpu, cuda = loaded("forecaster", "cpu", warm=False), loaded("forecaster", "cuda")
    items = bench_items(cpu, 12)
    quantiles = [[np.stack([o.result.quantiles for o in r.predict(items, False)])] for r in (cpu, cuda)]
    assert relative_error(quantiles[0], quantiles[1]) <= FP32_TOLERANCE


def test_nvml_gauges_report_the_gpus_memory() -> None:
    samples = {
        (s.name, s.labels.get("gpu")): s.value
        for family in Metrics().registry.collect()
        if family.name.startswith("lnserve_gpu")
        for s in family.samples
    }
    used, total = (
        samples[("lnserve_gpu_memory_used_bytes", "0")],
        samples[("lnserve_gpu_memory_total_bytes", "0")],
    )
    assert 0 < used <= total and total > 2**30
    assert 0.0 <= samples[("lnserve_gpu_utilization_ratio", "0")] <= 1.0
