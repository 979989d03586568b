"""A walk through the Open Inference Protocol REST specification (kserve/open-inference-protocol,
`specification/protocol/open_inference_rest.yaml`, OpenAPI 3.0, data plane version 2): every operation it lists,
in both of its path forms, against the real server, with the response checked against the spec's schema.

The schemas below restate the spec's `components.schemas` as JSON Schema (the spec's required fields and types);
the spec allows extra fields, which lnserve uses for extensions (`artifact`, `optional_outputs`, ...).
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

STRING, INTEGERS = {"type": "string"}, {"type": "array", "items": {"type": "integer"}}
TENSOR_DATA: dict[str, Any] = {
    "type": "array",
    "items": {"anyOf": [{"$ref": "#/$defs/tensor_data"}, {"type": ["number", "string", "boolean"]}]},
}
METADATA_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {"name": STRING, "datatype": STRING, "shape": INTEGERS},
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "metadata_server_response": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {"name": STRING, "version": STRING, "extensions": {"type": "array", "items": STRING}},
    },
    "metadata_model_response": {
        "type": "object",
        "required": ["name", "platform"],
        "properties": {
            "name": STRING,
            "versions": {"type": "array", "items": STRING},
            "platform": STRING,
            "inputs": {"type": "array", "items": METADATA_TENSOR},
            "outputs": {"type": "array", "items": METADATA_TENSOR},
        },
    },
    "inference_response": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": STRING,
            "model_version": STRING,
            "id": STRING,
            "parameters": {"type": "object"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": STRING,
                        "shape": INTEGERS,
                        "datatype": STRING,
                        "parameters": {"type": "object"},
                        "data": {"$ref": "#/$defs/tensor_data"},
                    },
                },
            },
        },
    },
    "error_response": {"type": "object", "required": ["error"], "properties": {"error": STRING}},
}
CHAT = {
    "id": "42",
    "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["i forgot my password"]}],
}
SERIES = [100.0 + (t % 12) for t in range(36)]
FORECAST = {"inputs": [{"name": "series", "shape": [1, 36], "datatype": "FP32", "data": SERIES}]}
MODELS = {"chatbot": CHAT, "forecaster": FORECAST}

# (operation id in the spec, method, path with ${MODEL_NAME} / ${MODEL_VERSION}, status, schema of the answer)
OPERATIONS = [
    ("get-v2-health-live", "GET", "/v2/health/live", 200, None),
    ("get-v2-health-ready", "GET", "/v2/health/ready", 200, None),
    ("get-v2", "GET", "/v2/", 200, "metadata_server_response"),
    ("get-v2-models-$-modelName-versions-$-modelVersion-ready", "GET", "/v2/models/{m}{v}/ready", 200, None),
    (
        "get-v2-models-$-modelName-versions-$-modelVersion",
        "GET",
        "/v2/models/{m}{v}",
        200,
        "metadata_model_response",
    ),
    (
        "post-v2-models-$-MODEL_NAME-versions-$-MODEL_VERSION-infer",
        "POST",
        "/v2/models/{m}{v}/infer",
        200,
        "inference_response",
    ),
]


def check(body: Any, schema: str | None) -> None:
    if schema is not None:
        jsonschema.validate(body, {**SCHEMAS[schema], "$defs": {"tensor_data": TENSOR_DATA}})


@pytest.mark.parametrize("versioned", [True, False], ids=["with-version", "without-version"])
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize(
    ("operation", "method", "path", "status", "schema"), OPERATIONS, ids=[o[0] for o in OPERATIONS]
)
def test_every_operation_of_the_spec_answers_with_its_schema(
    client: httpx.Client,
    operation: str,
    method: str,
    path: str,
    status: int,
    schema: str | None,
    model: str,
    versioned: bool,
) -> None:
    url = path.format(m=model, v="/versions/1" if versioned else "")
    response = client.request(method, url, json=MODELS[model] if method == "POST" else None)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    check(response.json(), schema)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v2/models/nope", None),
        ("GET", "/v2/models/chatbot/versions/9", None),
        (
            "POST",
            "/v2/models/chatbot/infer",
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]},
        ),
        ("POST", "/v2/models/nope/versions/1/infer", CHAT),
    ],
)
def test_errors_have_the_specs_error_object(client: httpx.Client, method: str, path: str, body: Any) -> None:
    response = client.request(method, path, json=body)
    assert 400 <= response.status_code < 500
    check(response.json(), "error_response")


def test_the_inference_response_names_the_model_and_echoes_the_id(client: httpx.Client) -> None:
    body = client.post("/v2/models/chatbot/versions/1/infer", json=CHAT).json()
    assert body["model_name"] == "chatbot" and body["model_version"] == "1" and body["id"] == "42"


def test_every_declared_output_is_returned_when_none_are_named(client: httpx.Client) -> None:
    for model, request in MODELS.items():
        declared = [o["name"] for o in client.get(f"/v2/models/{model}").json()["outputs"]]
        returned = [
            o["name"] for o in client.post(f"/v2/models/{model}/infer", json=request).json()["outputs"]
        ]
        assert returned == declared
