"""The named SQL blocks of sql/queries.sql."""

from __future__ import annotations

import pytest

from taskclaim.queries import parse, queries


def test_queries_parse_named_blocks_and_drop_comments() -> None:
    text = "-- header text\n-- one --\nselect 1\n-- a comment\n  from x\n\n-- two --\nselect 2\n"
    assert parse(text) == {"one": "select 1\n  from x", "two": "select 2"}


def test_queries_refuse_a_name_defined_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse("-- a --\nselect 1\n-- a --\nselect 2")


def test_every_shipped_query_has_sql() -> None:
    loaded = queries()
    assert {"claim", "complete", "fail", "heartbeat", "reap", "create_task", "token_user"} <= set(loaded)
    assert all(sql.strip() for sql in loaded.values())
