"""Request bodies: any bytes a caller sends are a typed body or a 400; what is accepted can be stored and
sent back unchanged."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from taskclaim import bodies, limits
from taskclaim.exceptions import BodyError
from taskclaim.handlers import FUNCTIONS
from tests.unit.strategies import bodies_of_fields


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
