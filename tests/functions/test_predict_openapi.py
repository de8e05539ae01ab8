"""docs/openapi/predict.yaml against the implementation: every status code predict answers is
documented with the schema its body has, every documented code is answered, and the request
and response fields, limits and error codes are the ones the code uses."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.serving.request import MAX_HORIZON_DAYS, Item
from shared.settings import Settings
from tests.fakes import RecordingPublisher
from tests.functions.predict_support import (
    KEY,
    OTHER_KEY,
    REPO,
    SHOP,
    FeatureServer,
    MemoryPointerStore,
    card,
    online_row,
    serve,
    settings,
    train_onnx,
    write_version,
)

SPEC = yaml.safe_load((REPO / "docs" / "openapi" / "predict.yaml").read_text())


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return resolve(node)


def check(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    """A JSON Schema subset (the keywords this document uses); AssertionError names the path."""
    schema = resolve(schema)
    for part in schema.get("allOf", ()):
        check(value, part, path)
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), f"{path}: not an object"
        for name in schema.get("required", ()):
            assert name in value, f"{path}.{name} is required"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(properties), f"{path}: undocumented {set(value) - set(properties)}"
        for name, sub in properties.items():
            if name in value:
                check(value[name], sub, f"{path}.{name}")
    elif kind == "array":
        assert isinstance(value, list), f"{path}: not an array"
        assert len(value) >= schema.get("minItems", 0) and len(value) <= schema.get("maxItems", len(value))
        for index, element in enumerate(value):
            check(element, schema.get("items", {}), f"{path}[{index}]")
    elif kind == "string":
        assert isinstance(value, str), f"{path}: not a string"
        if schema.get("format") == "date":
            date.fromisoformat(value)
    elif kind in ("number", "integer"):
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path}: not a number"
        if kind == "integer":
            assert isinstance(value, int), f"{path}: not an integer"
        assert value >= schema.get("minimum", value) and value <= schema.get("maximum", value), path
    elif kind == "boolean":
        assert isinstance(value, bool), f"{path}: not a boolean"


def documented(path: str, method: str, status: int) -> dict[str, Any]:
    responses = SPEC["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answers {status}, undocumented"
    return dict(responses[str(status)])


def check_response(response: Any, path: str = "/", method: str = "post") -> None:
    spec = documented(path, method, response.status_code)
    for header, header_spec in (spec.get("headers") or {}).items():
        if header_spec.get("required"):
            assert header in response.headers, f"{response.status_code}: header {header} missing"
    content = spec.get("content") or {}
    if "application/json" in content:
        check(response.json(), content["application/json"]["schema"])
    elif content:
        assert response.headers["content-type"].startswith("text/plain")


@pytest.fixture(scope="module")
def model() -> bytes:
    return train_onnx(1.0, seed=3)[0]


@pytest.fixture
def client(tmp_path: Path, model: bytes) -> Any:
    store = write_version(tmp_path, "1.0.0", model, card("1.0.0"))
    pointers = MemoryPointerStore()
    pointers.deploy("1.0.0")
    stale = datetime(2026, 11, 1, tzinfo=UTC)  # older than the history view's TTL
    features = FeatureServer({1: online_row(), 2: online_row(history_time=stale)})
    config = settings(SHOPML_PREDICT_MAX_BODY_BYTES="4096")
    test_client, _ = serve(config, pointers, store, features, RecordingPublisher())
    test_client.features = features
    return test_client


def post(client: Any, payload: Any, headers: dict[str, str] | None = None) -> Any:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/", content=data, headers={"Authorization": f"Bearer {KEY}", **(headers or {})})


def body(**changes: Any) -> dict[str, Any]:
    return {
        "shop_domain": SHOP,
        "horizon_days": 3,
        "items": [{"variant_id": 1}, {"variant_id": 2}],
        **changes,
    }


def test_every_answer_predict_gives_is_documented_with_its_schema(client: Any) -> None:
    answers = [
        post(client, body()),  # 200, one item a fallback
        post(client, body(horizon_days=MAX_HORIZON_DAYS)),
        client.put("/"),  # 405
        client.post("/", content=b"x" * 5000),  # 413
        client.post("/", json=body()),  # 401
        post(client, body(), {"Authorization": f"Bearer {OTHER_KEY}"}),  # 401 wrong_shop
        post(client, b"{"),  # 400
        client.options("/"),
        client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}),
        client.get("/metrics"),
    ]
    paths = ["/"] * 7 + ["/", "/metrics", "/metrics"]
    methods = ["post"] * 7 + ["options", "get", "get"]
    assert [a.status_code for a in answers] == [200, 200, 405, 413, 401, 401, 400, 204, 200, 401]
    for answer, path, method in zip(answers, paths, methods, strict=True):
        check_response(answer, path, method)
    client.features.broken = True  # an unexpected failure inside: 503
    unexpected = post(client, body())
    assert unexpected.status_code == 503
    check_response(unexpected)
    first = answers[0].json()
    assert [p["fallback"] for p in first["predictions"]] == [False, True]
    assert all(len(p["units"]) == 3 for p in first["predictions"])


def test_every_documented_400_and_401_code_is_one_predict_gives(client: Any) -> None:
    def codes(status: int) -> set[str]:
        schema = documented("/", "post", status)["content"]["application/json"]["schema"]
        return set(schema["allOf"][1]["properties"]["error"]["enum"])

    bad = [
        b"{",
        b"[]",
        json.dumps({"shop_domain": SHOP}).encode(),
        json.dumps(body(horizon_days="3")).encode(),
        json.dumps(body(items=[])).encode(),
        json.dumps(body(horizon_days=0)).encode(),
        json.dumps(body(items=[{"variant_id": i} for i in range(1, 102)])).encode(),
    ]
    seen = set()
    for payload in bad:
        answer = post(client, payload)
        assert answer.status_code == 400
        check_response(answer)
        seen.add(answer.json()["error"])
    assert seen == codes(400)
    unauthorized = {
        client.post("/", json=body()).json()["error"],
        post(client, body(), {"Authorization": f"Bearer {OTHER_KEY}"}).json()["error"],
    }
    assert unauthorized == codes(401)


def test_the_documented_fields_and_limits_are_the_implementations() -> None:
    schemas = SPEC["components"]["schemas"]
    assert set(schemas["Item"]["properties"]) == {field.name for field in dataclasses.fields(Item)}
    request = schemas["PredictRequest"]["properties"]
    assert request["horizon_days"]["maximum"] == MAX_HORIZON_DAYS
    defaults = Settings()
    assert request["items"]["maxItems"] == defaults.predict_max_items
    assert (
        str(defaults.predict_max_body_bytes) in SPEC["paths"]["/"]["post"]["responses"]["413"]["description"]
    )
    assert f"{defaults.app_proxy_max_age_seconds:g} s" in json.dumps(SPEC["paths"]["/"]["post"]["parameters"])


def test_every_retrain_answer_is_documented_with_its_schema(client: Any) -> None:
    key = {"Authorization": f"Bearer {KEY}"}
    answers = {
        202: client.post("/retrain", json={"reason": "inventory moved"}, headers=key),
        400: client.post("/retrain", json={"night": "2020-01-01"}, headers=key),
        401: client.post("/retrain", json={}),
    }
    for status, answer in answers.items():
        assert answer.status_code == status
        check_response(answer, "/retrain", "post")
    schema = documented("/retrain", "post", 400)["content"]["application/json"]["schema"]
    codes = set(schema["allOf"][1]["properties"]["error"]["enum"])
    seen = {
        client.post("/retrain", content=body, headers={**key, "Content-Type": "application/json"}).json()[
            "error"
        ]
        for body in (b"{", b'{"x": 1}', b'{"reason": 5}')
    }
    assert seen == codes
