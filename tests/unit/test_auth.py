"""The token classifier: Bearer headers and verified claims."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskclaim.auth import SERVICE, bearer_token, caller_from_claims
from taskclaim.exceptions import AuthError
from tests.unit.strategies import json_values


@pytest.mark.parametrize(
    ("header", "status"), [(None, 401), ("", 401), ("Basic abc", 401), ("Bearer", 401), ("Bearer   ", 401)]
)
def test_bearer_token_refusals(header: str | None, status: int) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(header)
    assert caught.value.status == status


def test_bearer_token_accepts_any_case_of_the_scheme() -> None:
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Bearer abc") == "abc"


@settings(max_examples=400, deadline=None)
@given(claims=json_values | st.dictionaries(st.sampled_from(["role", "sub", "aud"]), json_values))
def test_any_verified_claims_are_a_caller_or_a_403(claims: Any) -> None:
    try:
        caller = caller_from_claims(claims)
    except AuthError as exc:
        assert exc.status == 403
        return
    assert caller is SERVICE or isinstance(claims.get("sub"), str)
