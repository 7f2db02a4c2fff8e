"""Settings, read once from the environment. Names follow Supabase's where Supabase has one."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from taskclaim import limits
from taskclaim.exceptions import ConfigError
from taskclaim.pooler import pooler_mode


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("TASKCLAIM_DATA_DIR")
    return Path(configured) if configured else Path(platformdirs.user_data_dir("taskclaim"))


def database_url_from_env(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("DATABASE_URL") or env.get("SUPABASE_DB_URL") or None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default)
    if value == 0:
        raise ConfigError(f"{name} must be greater than 0")
    return value


def _secret_keys(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ConfigError("SUPABASE_SECRET_KEYS must be a JSON object of named keys") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) and v for v in parsed.values()):
        raise ConfigError("SUPABASE_SECRET_KEYS must be a JSON object of named keys")
    return tuple(parsed.values())


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    # A transaction-mode pooler in front of database_url ("transaction"): prepare nothing on it, and run
    # LISTEN and migrations on direct_url (taskclaim.pooler).
    pooler: str = "none"
    direct_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    supabase_url: str | None = None
    service_role_key: str | None = None
    secret_keys: tuple[str, ...] = ()
    jwt_secret: str | None = None
    jwks_json: str | None = None
    jwks_url: str | None = None
    # How long a personal access token's look-up is trusted while notifications are not proven to arrive (a
    # revoked token can claim this long); while they arrive, up to taskclaim.auth.TRUSTED_TOKEN_SECONDS.
    token_cache_seconds: float = 10.0
    default_lease_seconds: int = limits.DEFAULT_LEASE_SECONDS
    max_lease_seconds: int = limits.MAX_LEASE_SECONDS
    # The longest long poll; keep it below the idle timeout of any proxy in front of the service.
    max_wait_seconds: float = limits.MAX_WAIT_SECONDS
    reap_interval_seconds: float = 5.0
    probe_seconds: float = 10.0  # how often each process checks that its notifications arrive
    pool_min_size: int = 4
    pool_max_size: int = 16
    # How long a request waits for a database connection before it answers 503.
    pool_timeout_seconds: float = 5.0
    # How many coalesced claim statements may run at once (see taskclaim.batching). One is fastest:
    # concurrent claim statements make each other skip the rows they lock.
    claim_batches_inflight: int = 1
    # Which task a service claim takes: "oldest" (the plan's: the oldest ready task of any user) or
    # "round-robin" (users in turn, each their oldest: see migration 1500).
    claim_order: str = "oldest"
    # At most this many tasks of one user in progress at once (None: no cap). Under a cap, service claims
    # take users in turn, skipping those at the cap, and a user's claim at the cap gets nothing (204).
    max_in_progress_per_user: int | None = None
    # HTTP: a connection that sends no request this long after it opened (or after its last answer) is
    # closed, and so is one whose request has not fully arrived this long after its first byte.
    http_keepalive_seconds: float = 5.0
    http_read_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The environment's settings; each one unset keeps the field's default above (one source)."""
        env = os.environ if env is None else env
        supabase_url = env.get("SUPABASE_URL") or None
        jwks_url = env.get("SUPABASE_JWKS_URL") or None
        if jwks_url is None and supabase_url:
            jwks_url = supabase_url.rstrip("/") + "/auth/v1/.well-known/jwks.json"
        max_lease = int(_number(env, "TASKCLAIM_MAX_LEASE_SECONDS", cls.max_lease_seconds))
        default_lease = int(_number(env, "TASKCLAIM_LEASE_SECONDS", cls.default_lease_seconds))
        if not 1 <= max_lease <= limits.MAX_LEASE_SECONDS:
            raise ConfigError(f"TASKCLAIM_MAX_LEASE_SECONDS must be from 1 to {limits.MAX_LEASE_SECONDS}")
        max_wait = _number(env, "TASKCLAIM_MAX_WAIT_SECONDS", cls.max_wait_seconds)
        if max_wait > limits.MAX_WAIT_SECONDS:
            raise ConfigError(f"TASKCLAIM_MAX_WAIT_SECONDS must be from 0 to {limits.MAX_WAIT_SECONDS}")
        if not 1 <= default_lease <= max_lease:
            raise ConfigError(f"TASKCLAIM_LEASE_SECONDS must be from 1 to {max_lease}")
        database_url = database_url_from_env(env)
        try:
            pooler = pooler_mode(database_url, env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            database_url=database_url,
            pooler=pooler,
            direct_url=env.get("TASKCLAIM_DIRECT_URL") or env.get("DIRECT_URL") or None,
            data_dir=default_data_dir(env),
            supabase_url=supabase_url,
            service_role_key=env.get("SUPABASE_SERVICE_ROLE_KEY") or None,
            secret_keys=_secret_keys(env.get("SUPABASE_SECRET_KEYS")),
            jwt_secret=env.get("SUPABASE_JWT_SECRET") or None,
            jwks_json=_jwks_document(env.get("SUPABASE_JWKS") or None),
            claim_order=_claim_order(env.get("TASKCLAIM_CLAIM_ORDER") or cls.claim_order),
            max_in_progress_per_user=_cap(env.get("TASKCLAIM_MAX_IN_PROGRESS_PER_USER") or None),
            jwks_url=jwks_url,
            token_cache_seconds=_number(env, "TASKCLAIM_TOKEN_CACHE_SECONDS", cls.token_cache_seconds),
            default_lease_seconds=default_lease,
            max_lease_seconds=max_lease,
            max_wait_seconds=max_wait,
            reap_interval_seconds=_number(env, "TASKCLAIM_REAP_INTERVAL", cls.reap_interval_seconds),
            probe_seconds=_positive(env, "TASKCLAIM_PROBE_INTERVAL", cls.probe_seconds),
            pool_min_size=int(_number(env, "TASKCLAIM_POOL_MIN", cls.pool_min_size)),
            pool_max_size=int(_number(env, "TASKCLAIM_POOL_MAX", cls.pool_max_size)),
            pool_timeout_seconds=_number(env, "TASKCLAIM_POOL_TIMEOUT", cls.pool_timeout_seconds),
            claim_batches_inflight=max(
                1, int(_number(env, "TASKCLAIM_CLAIM_BATCHES", cls.claim_batches_inflight))
            ),
            http_keepalive_seconds=_positive(env, "TASKCLAIM_HTTP_KEEPALIVE", cls.http_keepalive_seconds),
            http_read_seconds=_positive(env, "TASKCLAIM_HTTP_READ_TIMEOUT", cls.http_read_seconds),
        )


def session_url(settings: Settings, url: str) -> str:
    """Where LISTEN, migrations and session advisory locks go: the direct URL when one is set."""
    return settings.direct_url or url


def ensure_service_key(settings: Settings) -> tuple[Settings, Path | None]:
    """With no service key configured, use the one kept in the data directory, made on first use."""
    if settings.service_role_key or settings.secret_keys:
        return settings, None
    path = settings.data_dir / "service_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = "sb_secret_" + secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    key = path.read_text().strip()
    return dataclasses.replace(settings, secret_keys=(key,)), path


def _jwks_document(text: str | None) -> str | None:
    """SUPABASE_JWKS as given, once it is known to be a JWKS document (a JSON object with a "keys" list)."""
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError('SUPABASE_JWKS is not a JWKS document (a JSON object with a "keys" list)')
    return text


CLAIM_ORDERS = ("oldest", "round-robin")


def _claim_order(text: str) -> str:
    if text not in CLAIM_ORDERS:
        choices = ", ".join(CLAIM_ORDERS)
        raise ConfigError(f"TASKCLAIM_CLAIM_ORDER must be one of {choices}, not {text[:40]!r}")
    return text


def _cap(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 1_000_000:
        raise ConfigError(
            f"TASKCLAIM_MAX_IN_PROGRESS_PER_USER must be a whole number from 1, not {text[:40]!r}"
        )
    return int(text)
