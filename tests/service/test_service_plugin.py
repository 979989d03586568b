"""A model kind added without editing the service: registered from a test module, served over our JSON API and
KServe v2 (through tritonclient), with metadata and validation derived from its tensor declarations."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.service.helpers import served_subprocess
from tests.service.tiny_kind import build_artifact, reference

RNG = np.random.default_rng(7)
WEIGHT, BIAS = RNG.normal(size=(4, 2)), RNG.normal(size=2)


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    models = tmp_path_factory.mktemp("tiny") / "models"
    build_artifact(models, "tiny-ln", WEIGHT, BIAS)
    env = {"LNSERVE_MODEL_DIR": str(models), "LNSERVE_KIND_MODULES": '["tests.service.tiny_kind"]'}
    with served_subprocess(env, models.parent / "server.log", timeout_s=60) as base:
        yield base


def test_the_extra_kind_answers_on_its_own_json_route_with_its_statistics(tiny_server: str) -> None:
    x = np.array([[3.0, -1.0, 0.5, 2.0]])
    body = httpx.post(
        tiny_server + "/v1/tiny", json={"values": x[0].tolist(), "return_activations": True}
    ).json()
    y, stats = reference(WEIGHT, BIAS, x)
    assert (
        body["artifact"] == "tiny-ln" and body["model"] == "tiny"
    )  # one artifact: the kind's name is its alias
    np.testing.assert_allclose(body["output"], y[0], rtol=1e-5, atol=1e-6)
    layer = body["activations"]["layers"][0]
    np.testing.assert_allclose(
        [layer[s] for s in ("mean", "std", "rms", "abs_mean", "abs_max")], stats[0, 0], atol=1e-5
    )


def test_the_extra_kind_is_served_over_kserve_v2_with_declared_metadata(tiny_server: str) -> None:
    client = triton.InferenceServerClient(tiny_server.removeprefix("http://"))
    metadata = client.get_model_metadata("tiny-ln")
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["y"]
    assert [o["name"] for o in metadata["optional_outputs"]] == ["activations"]
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    tensor = triton.InferInput("x", [3, 4], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("tiny-ln", [tensor], outputs=[triton.InferRequestedOutput("y")])
    np.testing.assert_allclose(result.as_numpy("y"), reference(WEIGHT, BIAS, x)[0], rtol=1e-5, atol=1e-6)


def test_validation_of_the_extra_kind_comes_from_its_declarations(tiny_server: str) -> None:
    wrong = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    response = httpx.post(tiny_server + "/v2/models/tiny-ln/infer", json=wrong)
    assert response.status_code == 422
    assert response.json() == {"error": "inputs.x: shape must be [-1, 4] (-1: any size), got [1, 3]"}
    short = httpx.post(tiny_server + "/v1/tiny", json={"values": [1.0, 2.0]})
    assert short.status_code == 422
    assert short.json() == {"error": "values: List should have at least 4 items after validation, not 2"}
