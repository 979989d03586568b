"""bench/graph_cost.py: the chat graph's cost per message on the benchmark messages, batched as the service does."""

from __future__ import annotations

import pytest

from bench.artifacts import default_artifact, prepared_runtime
from bench.graph_cost import main, mix_batches


def test_the_mix_is_every_benchmark_message_once_in_batches_of_one_bucket() -> None:
    runtime = prepared_runtime(default_artifact("chatbot"))
    batches, n_messages = mix_batches(runtime, 16)
    assert n_messages == 64
    assert sum(len(feeds["input_ids"]) for feeds in batches) == 64
    for feeds in batches:
        lengths = feeds["attention_mask"].sum(axis=1)
        assert len(lengths) <= 16
        assert {runtime.bucket(int(n)) for n in lengths} == {runtime.bucket(int(lengths.max()))}
        assert feeds["input_ids"].shape[1] == lengths.max()  # padded to its longest message (the CPU path)
    alone, _ = mix_batches(runtime, 1)
    assert len(alone) == 64


def test_the_table_has_every_graph_at_every_batch_size(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--seconds", "0.2"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][
        2:
    ]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        (graph, str(batch))
        for batch in (1, 16, 32)
        for graph in (
            "shipped, 1 thread",
            "shipped, 2 threads",
            "ORT transformer fusions",
            "int8 dynamic quantization",
        )
    ]
    shipped_alone = rows[0]
    assert shipped_alone[4].strip() == "1.00x" and float(shipped_alone[6]) == 0.0
    int8 = [r for r in rows if r[0].strip() == "int8 dynamic quantization"]
    assert all(float(r[6]) > 1e-4 for r in int8)  # quantized for real: its logits differ
