"""Transaction-mode connection poolers (PgBouncer, Supavisor's port 6543): whether one is in the way.

Behind such a pooler each transaction may run on a different server connection, so what lives in a
session does not work: server-side prepared statements (psycopg prepares a statement it has run five
times, and another client's statement of the same name then answers for it), LISTEN, and session-level
advisory locks. taskclaim then prepares nothing on its pooled connections and runs LISTEN and the
migrations on the direct URL (``TASKCLAIM_DIRECT_URL``) when one is given.

Standard library only: the worker client's fallback uses it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

MODES = ("transaction", "session", "none")
SUPAVISOR_TRANSACTION_PORT = 6543


def pooler_mode(database_url: str | None, env: Mapping[str, str]) -> str:
    """``TASKCLAIM_POOLER`` when set; else ``transaction`` for a URL on Supavisor's transaction port."""
    configured = env.get("TASKCLAIM_POOLER", "").strip().lower()
    if configured:
        if configured not in MODES:
            raise ValueError(f"TASKCLAIM_POOLER must be one of {', '.join(MODES)}, not {configured!r}")
        return configured
    return "transaction" if database_url and _port(database_url) == SUPAVISOR_TRANSACTION_PORT else "none"


def prepare_threshold(mode: str) -> int | None:
    """psycopg's ``prepare_threshold`` for connections through such a pooler: never prepare."""
    return None if mode == "transaction" else 5


def _port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None
