"""Runtimes on the real artifacts without HTTP: fallback thresholds, padding buckets, providers, quantiles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.sidecar import read
from service.kinds.chatbot.runtime import ChatbotRuntime, ChatResult, length_buckets
from service.kinds.forecaster.runtime import ForecasterRuntime, interpolate_quantiles
from service.runtime.base import Artifact, Prediction, RuntimeOptions
from service.runtime.providers import CUDA, cuda_device_count, select_providers
from tests.service.helpers import CHATBOT_ARTIFACTS, FORECASTER_ARTIFACTS, MODELS


def load_chatbot(variant: str = "chatbot-peri") -> ChatbotRuntime:
    folder = CHATBOT_ARTIFACTS / variant
    runtime = ChatbotRuntime(Artifact(folder, read(folder / "sidecar.json")), RuntimeOptions("auto", 1))
    runtime.load()
    return runtime


def answer(runtime: ChatbotRuntime, *texts: str, diagnostic: bool = False) -> list[Prediction[ChatResult]]:
    outcomes = runtime.predict([runtime.item(text) for text in texts], diagnostic)
    assert all(isinstance(o, Prediction) for o in outcomes)
    return outcomes  # type: ignore[return-value]


def test_low_confidence_falls_back_to_out_of_scope_with_the_fallback_reply() -> None:
    runtime = load_chatbot()
    fallback = json.loads((MODELS / "chatbot" / "intents.json").read_text())["fallback_reply"]
    confident = answer(runtime, "i forgot my password")[0].result
    assert confident.intent == "reset_password" and not confident.fallback
    runtime.config = runtime.config.model_copy(update={"confidence_threshold": confident.confidence + 1e-3})
    unsure = answer(runtime, "i forgot my password")[0].result
    assert unsure.intent == "out_of_scope" and unsure.fallback and unsure.reply == fallback
    assert unsure.confidence == pytest.approx(confident.confidence)
    assert unsure.alternatives[0][0] == "reset_password"


def test_small_margin_falls_back_too() -> None:
    runtime = load_chatbot()
    runtime.config = runtime.config.model_copy(
        update={"margin_threshold": 1.0}
    )  # no margin between two probabilities can reach 1
    assert answer(runtime, "i forgot my password")[0].result.intent == "out_of_scope"


def test_padding_to_a_longer_bucket_does_not_change_the_answer() -> None:
    runtime = load_chatbot()
    short = "cancel my plan"
    (alone,) = answer(runtime, short, diagnostic=True)
    with_long = answer(runtime, short, "word " * 60, diagnostic=True)[0]
    np.testing.assert_allclose(with_long.result.logits, alone.result.logits, rtol=1e-4, atol=1e-5)
    assert with_long.activations is not None and alone.activations is not None
    np.testing.assert_allclose(with_long.activations, alone.activations, rtol=1e-4, atol=1e-5)


def test_on_the_cpu_a_batch_is_padded_to_its_longest_message_with_the_bucket_padded_answer() -> None:
    runtime = load_chatbot("chatbot-post")
    items = [
        runtime.item(text)
        for text in ("cancel my plan", "i was charged twice for the same invoice last month")
    ]
    longest = max(len(item.ids) for item in items)
    assert not runtime.on_cuda and runtime.bucket(longest) > longest
    feeds = runtime.feeds(items)
    assert feeds["input_ids"].shape == (2, longest)
    assert feeds["attention_mask"].sum(axis=1).tolist() == [len(item.ids) for item in items]
    bucket = runtime.bucket(longest)
    padded = {name: np.pad(value, ((0, 0), (0, bucket - longest))) for name, value in feeds.items()}
    for diagnostic in (False, True):
        exact, exact_acts = runtime.run_graph(diagnostic, feeds, ["logits"])
        full, full_acts = runtime.run_graph(diagnostic, padded, ["logits"])
        np.testing.assert_allclose(exact[0], full[0], rtol=1e-5, atol=1e-6)
        if diagnostic:
            assert exact_acts is not None and full_acts is not None
            np.testing.assert_allclose(exact_acts, full_acts, rtol=1e-4, atol=1e-5)


def test_an_empty_text_is_one_unknown_token_in_training_and_serving_alike() -> None:
    from models.chatbot.tokenizer import UNK_ID

    assert load_chatbot().item("").ids == [UNK_ID]


def test_length_buckets_end_at_max_length() -> None:
    assert length_buckets(64) == [8, 16, 32, 64]
    assert length_buckets(50) == [8, 16, 32, 50]


def test_cuda_is_chosen_only_when_a_gpu_is_there() -> None:
    providers = select_providers("auto")
    assert (CUDA in providers) == (cuda_device_count() > 0)
    assert providers[-1] == "CPUExecutionProvider"


def test_loading_on_a_machine_without_gpu_logs_no_onnxruntime_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    load_chatbot("chatbot-pre")
    assert "[E:onnxruntime" not in capfd.readouterr().err


def test_quantiles_between_the_models_levels_are_interpolated() -> None:
    values = np.array([[1.0, 2.0, 4.0], [10.0, 20.0, 40.0]], dtype=np.float32)  # (H=2, levels 0.1/0.5/0.9)
    out = interpolate_quantiles([0.1, 0.5, 0.9], values, [0.1, 0.3, 0.7, 0.9])
    np.testing.assert_allclose(out, [[1.0, 1.5, 3.0, 4.0], [10.0, 15.0, 30.0, 40.0]])


def load_forecaster() -> ForecasterRuntime:
    folder = FORECASTER_ARTIFACTS / "forecaster"
    runtime = ForecasterRuntime(Artifact(folder, read(folder / "sidecar.json")), RuntimeOptions("cpu", 1))
    runtime.load()
    return runtime


def synthetic_series(n: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """Seasonal, trending, noisy series of 8 to 200 points with season lengths 1, 4 and 12."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        m = (1, 4, 12)[i % 3]
        t = np.arange(int(rng.integers(8, 201)))
        y = 100 + rng.uniform(-0.5, 2) * t + 20 * np.sin(2 * np.pi * t / m + i) + rng.normal(0, 5, t.size)
        out.append((y.astype(np.float32), m))
    return out


def test_a_forecast_batch_gives_each_series_what_it_gets_alone() -> None:
    """A series' quantiles and graph inputs do not depend on its batch companions."""
    runtime = load_forecaster()
    series = synthetic_series(24)
    items = [runtime.item(y, m, row) for row, (y, m) in enumerate(series)]
    batched = runtime.predict(items, False)
    for item, outcome in zip(items, batched, strict=True):
        (alone,) = runtime.predict([item], False)
        assert isinstance(outcome, Prediction) and isinstance(alone, Prediction)
        np.testing.assert_allclose(outcome.result.quantiles, alone.result.quantiles, rtol=1e-5)
    feeds = runtime.feeds(items)
    for row, item in enumerate(items):
        for name, value in runtime.feeds([item]).items():
            np.testing.assert_allclose(feeds[name][row : row + 1], value, rtol=1e-6, atol=1e-7)


def test_interpolated_quantiles_are_np_interp_of_each_step_and_the_model_levels_come_back_exactly() -> None:
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    rng = np.random.default_rng(0)
    values = np.sort(rng.normal(0, 1e3, (18, len(levels))), axis=1).astype(np.float32)
    wanted = [0.01, 0.05, 0.2, 0.5, 0.6, 0.93, 0.99]  # below, on and beyond the model's levels
    expected = np.array([[np.interp(w, levels, row) for w in wanted] for row in values], dtype=np.float32)
    np.testing.assert_allclose(interpolate_quantiles(levels, values, wanted), expected, rtol=1e-6)
    assert np.array_equal(interpolate_quantiles(levels, values, levels), values)
    one_level = interpolate_quantiles([0.5], values[:, :1], [0.1, 0.5, 0.9])
    assert np.array_equal(one_level, np.repeat(values[:, :1], 3, axis=1))


def spinning_entry(options: object) -> str | None:
    """The session's `allow_spinning` entry; None when unset (ORT's default: spinning allowed)."""
    try:
        return str(options.get_session_config_entry("session.intra_op.allow_spinning"))  # type: ignore[attr-defined]
    except RuntimeError:
        return None


@pytest.mark.parametrize(("setting", "entry"), [(True, None), (False, "0")])
def test_intra_op_spinning_reaches_every_session_of_a_runtime(setting: bool, entry: str | None) -> None:
    from service.settings import Settings

    folder = CHATBOT_ARTIFACTS / "chatbot-peri"
    options = RuntimeOptions.from_settings(Settings(intra_op_spinning=setting, providers="cpu"))
    runtime = ChatbotRuntime(Artifact(folder, read(folder / "sidecar.json")), options)
    runtime.load()
    assert len(runtime.sessions) == 2
    for session in runtime.sessions.values():
        assert spinning_entry(session.session.get_session_options()) == entry
    assert answer(runtime, "i forgot my password")[0].result.intent == "reset_password"
