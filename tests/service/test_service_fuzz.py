"""Fuzzing a live `lnserve serve` (with an API key): schemathesis `--checks all` over the OpenAPI document, and a
Hypothesis fuzzer of Open Inference Protocol bodies, JSON and binary extension. Not one 5xx.

Bounded for CI: `LNSERVE_FUZZ_EXAMPLES` (default 1500 per v2 test, so 3000 bodies) and `LNSERVE_SCHEMATHESIS_EXAMPLES`
(default 20 per operation, plus schemathesis' coverage phase). `docs/reliability.md` records a run of 10,000."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.tensors import DTYPES
from tests.service.helpers import REPO, model_folder, served_subprocess

API_KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
EXAMPLES = int(os.environ.get("LNSERVE_FUZZ_EXAMPLES", "1500"))
SCHEMATHESIS_EXAMPLES = int(os.environ.get("LNSERVE_SCHEMATHESIS_EXAMPLES", "20"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    models = model_folder(root, ["chatbot-peri"], forecaster=True)
    log = root / "server.log"
    env = {"LNSERVE_MODEL_DIR": str(models), "LNSERVE_API_KEY": API_KEY, "LNSERVE_WARMUP": "false"}
    with served_subprocess(env, log, headers=AUTH) as base:
        yield base
    errors = [line for line in log.read_text().splitlines() if '"level": "error"' in line]
    assert errors == [], errors[:3]  # no crash was logged while fuzzing


def test_schemathesis_checks_all_find_nothing(fuzz_server: str) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        fuzz_server + "/openapi.json",
        "--checks=all",
        "--workers=1",  # more trip a CPython 3.11 ast threading bug inside Hypothesis
        f"--max-examples={SCHEMATHESIS_EXAMPLES}",
        f"--header=Authorization: Bearer {API_KEY}",
        "--request-timeout=30",
        "--no-color",
    ]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)  # schemathesis.toml
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout or " 0 failures" in run.stdout or "passed" in run.stdout


# --- Open Inference Protocol bodies -------------------------------------------------------------------------
MODELS = st.sampled_from(["chatbot", "chatbot-peri", "forecaster", "nope"])
PATHS = st.builds(
    lambda model, version: f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer",
    MODELS,
    st.sampled_from([None, None, None, "1", "2", "x"]),
)
NAMES = st.sampled_from(["text", "series", "horizon", "season_length", "activations", "x", ""])
DATATYPES = st.sampled_from([*DTYPES, "BYTES", "FP32", "FP32", "INT64", "STRING", "fp32"])
TEXT = st.text(max_size=40) | st.sampled_from(["i forgot my password", " ", "pass \ud800 word", "a" * 2100])
NUMBER = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e6, max_value=1e6)
    | st.integers(-(2**70), 2**70)
    | st.integers(-3, 300)
)
JSON_SCALAR = st.none() | st.booleans() | NUMBER | TEXT
SHAPES = st.lists(st.integers(-1, 12) | st.integers(0, 3), max_size=3)
PARAMETERS = st.dictionaries(
    st.sampled_from(
        ["horizon", "season_length", "return_activations", "binary_data_output", "binary_data_size", "y"]
    ),
    JSON_SCALAR,
    max_size=3,
)


# Mostly the datatype's own JSON type, sometimes anything (built once: building strategies is what costs time).
ELEMENTS = {
    datatype: st.one_of(*[{"BYTES": TEXT, "BOOL": st.booleans()}.get(datatype, NUMBER)] * 3, JSON_SCALAR)
    for datatype in {*DTYPES, "STRING", "fp32"}
}
COUNT_SKEW = st.sampled_from([0, 0, 0, -1, 1])


def nest(values: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1 or not values or 0 in shape:
        return values
    step = max(1, len(values) // max(1, shape[0]))
    return [nest(values[i : i + step], shape[1:]) for i in range(0, len(values), step)]


@st.composite
def json_tensor(draw: st.DrawFn) -> dict[str, Any]:
    datatype = draw(DATATYPES)
    shape = draw(SHAPES)
    count = max(0, math.prod(max(0, d) for d in shape) + draw(COUNT_SKEW))
    values = [draw(ELEMENTS[datatype]) for _ in range(min(count, 48))]
    tensor: dict[str, Any] = {"name": draw(NAMES), "datatype": datatype, "shape": shape}
    if draw(st.integers(0, 9)):
        tensor["data"] = nest(values, shape) if draw(st.booleans()) else values
    if draw(st.integers(0, 4)) == 0:
        tensor["parameters"] = draw(PARAMETERS)
    return tensor


@st.composite
def json_body(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:  # not a request at all
        return draw(
            JSON_SCALAR | st.lists(JSON_SCALAR, max_size=3) | st.dictionaries(TEXT, JSON_SCALAR, max_size=3)
        )
    body: dict[str, Any] = {"inputs": draw(st.lists(json_tensor(), max_size=3))}
    if draw(st.booleans()):
        body["parameters"] = draw(PARAMETERS)
    if draw(st.booleans()):
        outputs = st.fixed_dictionaries({"name": NAMES}, optional={"parameters": PARAMETERS})
        body["outputs"] = draw(st.lists(outputs, max_size=3))
    if draw(st.booleans()):
        body["id"] = draw(TEXT | NUMBER)
    return body


BINARY_DATATYPES = st.sampled_from(list(DTYPES))
BINARY_SHAPES = st.lists(st.integers(0, 8), min_size=1, max_size=2)
BINARY_ELEMENTS = {True: st.text(max_size=30), False: st.floats(-1e6, 1e6) | st.integers(-300, 300)}


def serialized(datatype: str, values: list[Any]) -> bytes:
    """Well-formed binary tensor data, as tritonclient writes it."""
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
    with np.errstate(all="ignore"):
        return np.array(values, dtype=np.float64).astype(DTYPES[datatype]).tobytes()


@st.composite
def binary_body(draw: st.DrawFn) -> tuple[bytes, str | None]:
    inputs, blobs = [], []
    for _ in range(draw(st.integers(1, 3))):
        datatype = draw(st.sampled_from(list(DTYPES)))
        shape = draw(st.lists(st.integers(0, 12), min_size=1, max_size=2))
        count = math.prod(shape)
        if datatype == "BYTES":
            values = draw(st.lists(st.text(max_size=30), min_size=count, max_size=count))
        else:
            values = draw(
                st.lists(st.floats(-1e6, 1e6) | st.integers(-300, 300), min_size=count, max_size=count)
            )
        blob = serialized(datatype, values) if draw(st.integers(0, 3)) else draw(st.binary(max_size=64))
        if draw(st.integers(0, 5)) == 0:
            blob = blob[: draw(st.integers(0, len(blob)))]  # truncated
        size = len(blob) if draw(st.integers(0, 5)) else draw(st.integers(-2, 100) | TEXT)
        name = draw(NAMES)
        inputs.append(
            {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}
        )
        blobs.append(blob)
    header: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        names = st.sampled_from(["intent", "confidence", "probabilities", "logits", "forecast", "quantiles",
                                 "activations", "x"])  # fmt: skip
        header["outputs"] = [{"name": n, "parameters": {"binary_data": draw(st.booleans())}}
                             for n in draw(st.lists(names, max_size=3))]  # fmt: skip
    raw = json.dumps(header).encode()
    body = raw + b"".join(blobs)
    length = draw(st.sampled_from([str(len(raw))] * 4 + [None, "0", str(len(body) + 1), "-1", "x", "²"]))
    return body, length


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}
    else:
        header_length = response.headers.get("inference-header-content-length")
        header = response.content[: int(header_length)] if header_length else response.content
        assert json.loads(header)["outputs"]


@pytest.fixture(scope="module")
def http(fuzz_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_server, headers=AUTH, timeout=30) as client:
        yield client


@FUZZ
@given(path=PATHS, body=json_body())
def test_fuzzed_v2_json_bodies_never_get_a_5xx(http: httpx.Client, path: str, body: Any) -> None:
    check(http.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}))


@FUZZ
@given(path=PATHS, body=binary_body())
def test_fuzzed_v2_binary_bodies_never_get_a_5xx(
    http: httpx.Client, path: str, body: tuple[bytes, str | None]
) -> None:
    content, header_length = body
    headers = {"content-type": "application/octet-stream"}
    if header_length is not None:
        headers["inference-header-content-length"] = header_length.encode("latin-1")  # type: ignore[assignment]
    check(http.post(path, content=content, headers=headers))
