"""The defaults written in the SQL functions are taskclaim.limits' (the numbers have one source; the SQL
cannot import it, so this test holds the two together)."""

from __future__ import annotations

import re

import pytest

from taskclaim import limits
from tests.helpers import Conn


def defaults_of(db: Conn, function: str) -> dict[str, str]:
    rows = db.execute(
        "select pg_get_function_arguments(p.oid) as args from pg_proc p"
        " join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public' and p.proname = %s",
        (function,),
    ).fetchall()
    found: dict[str, str] = {}
    for row in rows:
        found |= dict(re.findall(r"(p_\w+) \w+(?:\[\])? DEFAULT ([^,]+)", row["args"]))
    return found


@pytest.mark.parametrize(
    ("function", "argument", "value"),
    [
        ("taskclaim_claim", "p_lease_seconds", limits.DEFAULT_LEASE_SECONDS),
        ("taskclaim_create_task", "p_max_attempts", limits.DEFAULT_MAX_ATTEMPTS),
    ],
)
def test_sql_defaults_are_the_limits(db: Conn, function: str, argument: str, value: int) -> None:
    assert defaults_of(db, function)[argument] == str(value)


def test_the_plans_rpcs_claim_with_the_default_lease(db: Conn) -> None:
    for function in ("func_claim_task", "func_claim_user_task"):
        body = db.execute("select prosrc from pg_proc where proname = %s", (function,)).fetchone()
        assert body is not None
        assert f", {limits.DEFAULT_LEASE_SECONDS}, null, null)" in body["prosrc"], function


def test_the_sql_checks_use_the_limits(db: Conn) -> None:
    body = db.execute("select prosrc from pg_proc where proname = 'taskclaim_check_claim'").fetchone()
    assert body is not None
    for number in (limits.MAX_NAME_LENGTH, limits.MAX_LEASE_SECONDS, limits.MAX_TASK_TYPES):
        assert str(number) in body["prosrc"]
    core = db.execute("select prosrc from pg_proc where proname = 'taskclaim_claim_core'").fetchone()
    assert core is not None and f"limit {limits.MAX_BATCH_TASKS}" in core["prosrc"]
