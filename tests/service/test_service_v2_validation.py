"""KServe v2 inputs a careless client sends: each one a clear 400/422, never a 5xx, never stringified."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import numpy as np
import pytest

SERIES = [float(v) for v in range(1, 13)]


def tensor(name: str, datatype: str, shape: list[int], data: Any = None, **parameters: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if data is not None:
        entry["data"] = data
    if parameters:
        entry["parameters"] = parameters
    return entry


def post_binary(
    client: httpx.Client, model: str, inputs: list[dict[str, Any]], blob: bytes, outputs: Any = None
) -> httpx.Response:
    header: dict[str, Any] = {"inputs": inputs}
    if outputs is not None:
        header["outputs"] = outputs
    raw = json.dumps(header).encode()
    return client.post(
        f"/v2/models/{model}/infer",
        content=raw + blob,
        headers={
            "Inference-Header-Content-Length": str(len(raw)),
            "content-type": "application/octet-stream",
        },
    )


@pytest.mark.parametrize(
    ("model", "inputs", "parameters", "status", "error"),
    [
        ("chatbot", [tensor("text", "BYTES", [0], [])], {}, 422,
         "inputs.text: shape [0] holds no values; give at least one"),
        ("forecaster", [tensor("series", "FP32", [0, 8], [])], {}, 422,
         "inputs.series: shape [0, 8] holds no values; give at least one"),
        ("forecaster", [tensor("series", "UINT8", [2], [300, -1])], {}, 422,
         "inputs.series: UINT8 values must lie in [0, 255]"),
        ("forecaster", [tensor("series", "FP32", [12], SERIES), tensor("horizon", "INT64", [1], [2**63])], {}, 422,
         "inputs.horizon: INT64 values must lie in [-9223372036854775808, 9223372036854775807]"),
        ("forecaster", [tensor("series", "FP32", [12], SERIES)], {"horizon": "²"}, 422,
         "parameters.horizon: must be a positive integer, got '²'"),
        ("forecaster", [tensor("series", "BYTES", [1], ["x"])], {}, 422,
         "inputs.series: datatype must be FP32 or FP64, got BYTES"),
        ("forecaster", [tensor("series", "FP64", [12], [*SERIES[:-1], 10**400])], {}, 422,
         "inputs.series: a value lies outside the range of FP64"),
        ("forecaster", [tensor("series", "FP32", [12], [*SERIES[:-1], 1e39])], {}, 422,
         "inputs.series: a value lies outside the range of FP32"),
        ("chatbot", [tensor("text", "BYTES", [1], [None])], {}, 422,
         "inputs.text: BYTES data must be strings, got None"),
        ("chatbot", [tensor("text", "FP32", [1], [1.5])], {}, 422,
         "inputs.text: datatype must be BYTES, got FP32"),
        ("chatbot", [tensor("text", "INT64", [1], [7])], {}, 422, "inputs.text: datatype must be BYTES, got INT64"),
        ("chatbot", [tensor("text", "BOOL", [1], [True])], {}, 422, "inputs.text: datatype must be BYTES, got BOOL"),
        ("chatbot", [tensor("text", "BYTES", [1], ["hi"])], {"return_activations": 0}, 422,
         "parameters.return_activations: must be true or false, got 0"),
        ("chatbot", [tensor("text", "BYTES", [1.5], ["hi"])], {}, 422,
         "inputs[0].shape[0]: Input should be a valid integer"),
        ("chatbot", [tensor("text", "STRING", [1], ["hi"])], {}, 422,
         "inputs[0].datatype: Input should be 'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', "
         "'INT32', 'INT64', 'FP16', 'FP32', 'FP64' or 'BYTES'"),
    ],
)  # fmt: skip
def test_bad_v2_json_inputs_get_a_clear_4xx(
    client: httpx.Client, model: str, inputs: list[Any], parameters: dict[str, Any], status: int, error: str
) -> None:
    response = client.post(f"/v2/models/{model}/infer", json={"inputs": inputs, "parameters": parameters})
    assert (response.status_code, response.json()) == (status, {"error": error})


@pytest.mark.parametrize(
    ("model", "inputs", "blob", "error"),
    [
        ("forecaster", [tensor("series", "FP32", [3], binary_data_size=10)], b"\0" * 10,
         "inputs.series: binary FP32 data of 10 bytes is not a multiple of 4"),
        ("chatbot", [tensor("text", "BYTES", [1], binary_data_size=6)], struct.pack("<I", 9) + b"hi",
         "inputs.text: binary BYTES element of 9 bytes runs past the data"),
        ("chatbot", [tensor("text", "BYTES", [1], binary_data_size=2)], b"\x05\x00",
         "inputs.text: binary BYTES data ends inside a length prefix"),
        ("chatbot", [tensor("text", "BYTES", [1], binary_data_size=6)], struct.pack("<I", 2) + b"\xff\xfe",
         "inputs.text: binary BYTES element 0 is not UTF-8"),
        ("chatbot", [tensor("text", "BYTES", [1], binary_data_size=8)], struct.pack("<I", 2) + b"hi",
         "inputs.text: binary data is shorter than binary_data_size 8"),
        ("forecaster", [tensor("series", "FP32", [2], binary_data_size=8)], np.zeros(4, np.float32).tobytes(),
         "8 bytes of binary data follow the inputs without belonging to any"),
    ],
)  # fmt: skip
def test_bad_v2_binary_inputs_get_422(
    client: httpx.Client, model: str, inputs: list[Any], blob: bytes, error: str
) -> None:
    response = post_binary(client, model, inputs, blob)
    assert (response.status_code, response.json()) == (422, {"error": error})


def test_a_header_length_that_is_no_number_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v2/models/chatbot/infer",
        content=b"{}",
        headers={"Inference-Header-Content-Length": "²".encode("latin-1")},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Inference-Header-Content-Length '²' does not fit a body of 2 bytes"}


NEAR_MAX = [3.0e38, 3.1e38, 3.2e38, 3.0e38, 3.3e38, 3.0e38, 3.2e38, 3.3e38, 3.0e38, 3.1e38]


@pytest.mark.parametrize("binary", [False, True])
def test_a_non_finite_forecast_is_a_422_on_v2_never_null_or_infinity(
    client: httpx.Client, binary: bool
) -> None:
    before = client.get("/metrics").text
    inputs = [tensor("series", "FP32", [10], NEAR_MAX)]
    outputs = [{"name": "forecast", "parameters": {"binary_data": binary}}]
    response = client.post("/v2/models/forecaster/infer", json={"inputs": inputs, "outputs": outputs})
    after = client.get("/metrics").text
    assert response.status_code == 422 and response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "model forecaster produced a non-finite forecast for this series"}
    assert _count(after) == _count(before) + 1


def test_series_values_beyond_the_bound_are_422_on_the_json_route(client: httpx.Client) -> None:
    response = client.post("/v1/forecast", json={"series": [*SERIES[:-1], -3e38]})
    assert (response.status_code, response.json()) == (422, {"error": "series[11]: must lie within ±1e+30"})
    largest = client.post("/v1/forecast", json={"series": [1e30, -1e30] * 6})
    assert largest.status_code == 200 and all(np.isfinite(largest.json()["forecast"]))


def _count(metrics: str) -> float:
    """The forecaster's non-finite outputs over all its versions."""
    prefix = 'lnserve_nonfinite_outputs_total{model="forecaster",'
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(prefix))
