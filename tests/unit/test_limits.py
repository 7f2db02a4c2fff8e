"""The JSON values a task may hold (limits.json_problem)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from taskclaim import limits
from tests.unit.strategies import json_values


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
