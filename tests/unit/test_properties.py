"""Property tests: whatever bytes a caller sends, the parsers and the token classifier answer with a value
or a 4xx of their own, never another exception; what they accept can be stored and sent back."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskclaim import bodies, limits
from taskclaim.auth import SERVICE, caller_from_claims
from taskclaim.batching import Coalescer
from taskclaim.exceptions import AuthError, BadRequest, BodyError, DatabaseUnavailable
from taskclaim.handlers import FUNCTIONS
from taskclaim.openapi import openapi_document

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
FIELDS = [
    "worker_id", "lease_seconds", "claim_id", "wait_seconds", "task_types", "max_tasks", "task_id",
    "attempt", "result", "output_location", "error", "retry", "project_id", "task_type", "params",
    "dependant_on", "idempotency_key", "max_attempts", "extra",
]  # fmt: skip
bodies_of_fields = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from([f.body for f in FUNCTIONS.values()]), body=bodies_of_fields)
def test_any_json_body_is_a_typed_body_or_a_400(kind: type[bodies.Body], body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()  # the standard library writes big integers too
    try:
        decoded = bodies.decode(kind, raw)
    except BodyError as exc:
        assert exc.status == 400 and exc.message
        return
    # Accepted: every value can be stored in PostgreSQL and sent back by the service unchanged.
    for name in ("params", "result"):
        value = getattr(decoded, name, None)
        assert limits.json_problem(value) is None
        assert orjson.loads(orjson.dumps(value)) == value


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_a_typed_body_or_a_400(raw: bytes) -> None:
    for function in FUNCTIONS.values():
        try:
            bodies.decode(function.body, raw)
        except BodyError as exc:
            assert exc.status == 400


@settings(max_examples=400, deadline=None)
@given(claims=json_values | st.dictionaries(st.sampled_from(["role", "sub", "aud"]), json_values))
def test_any_verified_claims_are_a_caller_or_a_403(claims: Any) -> None:
    try:
        caller = caller_from_claims(claims)
    except AuthError as exc:
        assert exc.status == 403
        return
    assert caller is SERVICE or isinstance(claims.get("sub"), str)


@settings(max_examples=400, deadline=None)
@given(value=json_values)
def test_a_json_value_without_a_problem_round_trips_through_the_encoder(value: Any) -> None:
    if limits.json_problem(value) is None:
        assert orjson.loads(orjson.dumps(value)) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (2**53, "integer outside"),
        (-(2**53), "integer outside"),
        (1e20, "integer outside"),
        ([[[[1]]]], None),
        ({"\x00": 1}, "NUL"),
        (["a\x00"], "NUL"),
        (math.inf, "not finite"),
    ],
)
def test_json_problem_names_what_is_wrong(value: Any, problem: str | None) -> None:
    found = limits.json_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_json_problem_counts_nesting_like_postgresql() -> None:
    value: Any = 1
    for _ in range(limits.MAX_JSON_DEPTH):
        value = [value]
    assert limits.json_problem(value) is None
    assert limits.json_problem([value]) is not None


def test_every_request_schema_in_the_document_is_the_struct_the_service_decodes_with() -> None:
    document = openapi_document()
    components = document["components"]["schemas"]
    for name, function in FUNCTIONS.items():
        ref = document["paths"][f"/functions/v1/{name}"]["post"]["requestBody"]["content"]["application/json"]
        schema = components[ref["schema"]["$ref"].rsplit("/", 1)[1]]
        (_,), defs = msgspec.json.schema_components([function.body])
        generated = defs[function.body.__name__]
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == set(generated["properties"])
        assert schema.get("required", []) == generated.get("required", [])


def test_the_document_states_the_limits_the_service_enforces() -> None:
    schemas = openapi_document(max_lease_seconds=600)["components"]["schemas"]

    def field(struct: str, name: str) -> dict[str, Any]:
        value: dict[str, Any] = schemas[struct]["properties"][name]
        options: list[dict[str, Any]] = value.get("anyOf", [value])
        return options[0]

    worker_id = field("ClaimNextTask", "worker_id")
    assert (worker_id["minLength"], worker_id["maxLength"]) == (1, limits.MAX_NAME_LENGTH)
    assert field("CreateTask", "task_type")["maxLength"] == limits.MAX_NAME_LENGTH
    assert field("CompleteTask", "attempt")["minimum"] == 1
    assert field("CreateTask", "max_attempts")["maximum"] == limits.MAX_MAX_ATTEMPTS
    assert field("FailTask", "error")["maxLength"] == limits.MAX_ERROR_LENGTH
    assert field("CompleteTask", "output_location")["maxLength"] == limits.MAX_OUTPUT_LOCATION_LENGTH
    assert field("ClaimTasks", "lease_seconds")["maximum"] == 600  # this service's maximum


def test_a_batch_that_fails_is_sent_again_item_by_item_so_only_the_bad_item_fails() -> None:
    sent: list[list[str]] = []

    async def run(key: None, items: list[str]) -> list[str]:
        sent.append(items)
        await asyncio.sleep(0)
        if "bad" in items:
            raise BadRequest("bad item")
        return [item.upper() for item in items]

    async def scenario() -> list[Any]:
        coalescer: Coalescer[None, str, str] = Coalescer(run)
        calls = [coalescer.submit(None, item) for item in ("first", "a", "bad", "b")]
        return await asyncio.gather(*calls, return_exceptions=True)

    first, a, bad, b = asyncio.run(scenario())
    assert (first, a, b) == ("FIRST", "A", "B")
    assert isinstance(bad, BadRequest)
    assert sent[0] == ["first", "a", "bad", "b"]  # one statement for all four, then each alone
    assert sorted(sent[1:]) == [["a"], ["b"], ["bad"], ["first"]]


def test_an_unreachable_database_fails_every_item_of_a_batch_without_retrying() -> None:
    sent: list[list[str]] = []

    async def run(key: None, items: list[str]) -> list[str]:
        sent.append(items)
        await asyncio.sleep(0)
        raise DatabaseUnavailable("down")

    async def scenario() -> list[Any]:
        coalescer: Coalescer[None, str, str] = Coalescer(run)
        return await asyncio.gather(*(coalescer.submit(None, i) for i in "abc"), return_exceptions=True)

    assert all(isinstance(answer, DatabaseUnavailable) for answer in asyncio.run(scenario()))
    assert sent == [["a", "b", "c"]]
