"""GET /api/v1/openapi.json: the receiver's API as the framework describes it, checked
against what the receiver really takes and answers."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from domain.batch import batch_json_schema
from receiver import Receiver
from tests.fixtures.batches import batch, interval, key

pytestmark = pytest.mark.timeout(30)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Any]]:
    """A client of one receiver, and the OpenAPI document it serves."""
    path = tmp_path_factory.mktemp("openapi") / "central.db"
    with (
        Receiver(path, token=TOKEN) as receiver,
        httpx.Client(base_url=receiver.url, timeout=10) as http,
    ):
        answer = http.get("/api/v1/openapi.json", headers=AUTH)
        assert answer.status_code == 200
        yield http, answer.json()


def component(document: Any, name: str) -> dict[str, Any]:
    """A schema of the document, standalone: its references resolve within the document."""
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{name}"}
    return schema | {"components": document["components"]}


def test_the_document_needs_the_token(served: tuple[httpx.Client, Any]) -> None:
    http, _ = served
    assert http.get("/api/v1/openapi.json").status_code == 401


def test_every_endpoint_is_described_once_without_head_twins(
    served: tuple[httpx.Client, Any],
) -> None:
    _, document = served
    assert document["openapi"].startswith("3.")
    assert {path: sorted(ops) for path, ops in document["paths"].items()} == {
        "/api/v1/batches": ["post"],
        "/api/v1/schema": ["get"],
        "/api/v1/intervals": ["get"],
        "/api/v1/events": ["get"],
        "/api/v1/summary": ["get"],
        "/healthz": ["get"],
    }
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_the_batch_endpoint_takes_the_published_batch_schema(
    served: tuple[httpx.Client, Any],
) -> None:
    """The request body is the Batch schema, the same as GET /api/v1/schema: a batch the
    receiver stores is valid against it, one it refuses with 422 is not."""
    http, document = served
    post = document["paths"]["/api/v1/batches"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Batch"}
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
    assert {"200", "401", "409", "413", "422"} <= set(post["responses"])
    published = http.get("/api/v1/schema", headers=AUTH).json()
    batch_schema = document["components"]["schemas"]["Batch"]
    assert batch_schema["properties"].keys() == published["properties"].keys()
    assert batch_schema["required"] == batch_json_schema()["required"]

    good = batch(sequence=5)
    bad = batch(sequence=6, intervals=[interval() | {"coverage": 1.5}])
    validator = jsonschema.Draft202012Validator(component(document, "Batch"))
    answers = [
        http.post(
            "/api/v1/batches",
            content=gzip.compress(json.dumps(doc).encode()),
            headers=AUTH | {"Content-Encoding": "gzip", "Idempotency-Key": key(doc)},
        )
        for doc in (good, bad)
    ]
    assert [a.status_code for a in answers] == [200, 422]
    assert [validator.is_valid(doc) for doc in (good, bad)] == [True, False]


@pytest.mark.parametrize(
    ("path", "params", "model"),
    [
        ("/api/v1/intervals", {}, "IntervalsAnswer"),
        ("/api/v1/events", {}, "EventsAnswer"),
        ("/api/v1/summary", {"by": "gateway", "period": "day"}, "SummaryAnswer"),
        ("/healthz", {}, "HealthAnswer"),
    ],
)
def test_answers_match_their_described_models(
    served: tuple[httpx.Client, Any], path: str, params: dict[str, str], model: str
) -> None:
    """What a GET answers is valid against the model its 200 names, as are refusals."""
    http, document = served
    http.post(  # something to read back
        "/api/v1/batches",
        content=json.dumps(doc := batch(sequence=9)).encode(),
        headers=AUTH | {"Idempotency-Key": key(doc)},
    )
    operation = document["paths"][path]["get"]
    described = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert described == {"$ref": f"#/components/schemas/{model}"}
    answer = http.get(path, params=params, headers=AUTH).json()
    jsonschema.validate(answer, component(document, model))
    refusal = http.get(path, params=params).json()
    jsonschema.validate(refusal, component(document, "Refusal"))


def test_the_query_parameters_of_events_are_listed(served: tuple[httpx.Client, Any]) -> None:
    _, document = served
    parameters = document["paths"]["/api/v1/events"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == [
        "gateway",
        "device",
        "kind",
        "severity",
        "from",
        "to",
        "limit",
    ]


def test_the_receiver_serves_no_docs_pages(served: tuple[httpx.Client, Any]) -> None:
    """No /docs, /redoc or /openapi.json of the framework's own beside the guarded one."""
    http, _ = served
    paths = ("/docs", "/redoc", "/openapi.json")
    assert [http.get(path, headers=AUTH).status_code for path in paths] == [404] * 3


def test_a_stored_answer_matches_its_model(served: tuple[httpx.Client, Any]) -> None:
    http, document = served
    doc = batch(sequence=11)
    answer = http.post(
        "/api/v1/batches",
        content=json.dumps(doc).encode(),
        headers=AUTH | {"Idempotency-Key": key(doc)},
    )
    jsonschema.validate(answer.json(), component(document, "StoredAnswer"))
