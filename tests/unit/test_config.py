"""Settings from the environment."""

from __future__ import annotations

import pytest

from taskclaim.config import Settings
from taskclaim.exceptions import ConfigError


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
    [
        {"SUPABASE_SECRET_KEYS": "[1]"},
        {"SUPABASE_SECRET_KEYS": "{"},
        {"TASKCLAIM_REAP_INTERVAL": "soon"},
        {"TASKCLAIM_POOLER": "statement"},
    ],
)
def test_bad_settings_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "pooler"),
    [
        ({"DATABASE_URL": "postgresql://u@db.example.com:5432/postgres"}, "none"),
        # Supavisor's transaction port on Supabase is recognised without being told
        ({"DATABASE_URL": "postgresql://u:p@aws-0-eu.pooler.supabase.com:6543/postgres"}, "transaction"),
        ({"SUPABASE_DB_URL": "postgresql://u@h:6543/postgres", "TASKCLAIM_POOLER": "session"}, "session"),
        ({"DATABASE_URL": "postgresql://u@h:6432/db", "TASKCLAIM_POOLER": "Transaction"}, "transaction"),
        ({}, "none"),
    ],
)
def test_a_transaction_pooler_is_configured_or_recognised_by_its_port(
    env: dict[str, str], pooler: str
) -> None:
    assert Settings.from_env(env).pooler == pooler


def test_the_direct_url_is_taken_from_either_name() -> None:
    assert Settings.from_env({"TASKCLAIM_DIRECT_URL": "postgresql://a/b"}).direct_url == "postgresql://a/b"
    assert Settings.from_env({"DIRECT_URL": "postgresql://c/d"}).direct_url == "postgresql://c/d"
