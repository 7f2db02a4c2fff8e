"""Pure functions: no database, no server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskclaim.auth import bearer_token
from taskclaim.config import Settings
from taskclaim.exceptions import AuthError, ConfigError
from taskclaim.queries import parse, queries
from taskclaim.tokens import PREFIX, new_token, parse_duration, token_hash


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


def test_tokens_are_unique_dotless_and_hashed_as_sha256_hex() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert token.startswith(PREFIX) and "." not in token
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "30", "d", "-1d", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


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


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "SUPABASE_DB_URL": "postgresql://x/y",
            "SUPABASE_URL": "https://p.supabase.co/",
            "SUPABASE_SECRET_KEYS": '{"default": "sb_secret_a", "ci": "sb_secret_b"}',
            "TASKCLAIM_DATA_DIR": "/tmp/somewhere",
        }
    )
    assert settings.database_url == "postgresql://x/y"
    assert settings.jwks_url == "https://p.supabase.co/auth/v1/.well-known/jwks.json"
    assert settings.secret_keys == ("sb_secret_a", "sb_secret_b")
    assert str(settings.data_dir) == "/tmp/somewhere"


def test_database_url_wins_over_supabase_db_url() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://a/b", "SUPABASE_DB_URL": "postgresql://c/d"})
    assert settings.database_url == "postgresql://a/b"


@pytest.mark.parametrize(
    "env",
    [{"SUPABASE_SECRET_KEYS": "[1]"}, {"SUPABASE_SECRET_KEYS": "{"}, {"TASKCLAIM_REAP_INTERVAL": "soon"}],
)
def test_bad_settings_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_the_openapi_document_describes_every_route_the_app_serves() -> None:
    from starlette.routing import Route

    from taskclaim.app import create_app
    from taskclaim.openapi import openapi_document

    app = create_app(Settings(), "postgresql://unused")  # building the app connects to nothing
    served = {route.path: set(route.methods or ()) for route in app.routes if isinstance(route, Route)}
    documented = openapi_document()["paths"]
    assert set(served) == set(documented)
    for path, methods in served.items():
        assert {m.lower() for m in methods} - {"head"} == set(documented[path]), path
