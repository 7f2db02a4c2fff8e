"""The worker client's direct-RPC fallback: the queue's SQL functions over a direct connection (psycopg and
``DATABASE_URL``) or through a supabase-py client, for when the service cannot serve.

**A scope never widens.** The fallback acts for whom the worker's token names, as the service would: a
service key on every user's queue, a user's token on that user's alone. It resolves the token once:

- a service key (equal to ``SUPABASE_SERVICE_ROLE_KEY`` or a value of ``SUPABASE_SECRET_KEYS`` in the
  worker's environment, or any ``sb_secret_…`` key) → every user;
- a JWT → its ``role`` (``service_role``/``supabase_admin``: every user) or its ``sub`` (that user). With
  ``SUPABASE_JWT_SECRET`` set, an HS256 token is verified first; otherwise its claims are read as they are:
  the worker already holds a database URL that can do anything, so reading its own token unverified gives
  it nothing it does not have; what matters is that a user's token stays that user's;
- anything else is a personal access token, looked up by its SHA-256 (``taskclaim_token_user``) → its user.

A token that names nobody (unknown, revoked, expired, malformed) gets no fallback: one log line, and the
call raises ``ServiceUnavailable``. It never becomes the all-users claim. No token at all acts with what
the database URL itself allows (every user), as the plan's original worker did. ``user_id`` given to the
client narrows any scope to that user, and conflicts with a token of another user.

Standard library and psycopg only (imported when first used): the client stays light.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from taskclaim import limits
from taskclaim.exceptions import ClientError, NotHeld, ServiceUnavailable, queue_error
from taskclaim.pooler import pooler_mode, prepare_threshold
from taskclaim.queries import query

log = logging.getLogger("taskclaim.client")

SERVICE_ROLES = frozenset({"service_role", "supabase_admin"})
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Scope:
    """Whose tasks the fallback acts on: every user's (``user_id`` None) or one user's."""

    user_id: str | None


class Unresolved(Exception):
    """The token names nobody the fallback can act for."""


def service_keys(env: dict[str, str] | None = None) -> set[str]:
    env = dict(os.environ) if env is None else env
    keys = {env.get("SUPABASE_SERVICE_ROLE_KEY") or ""}
    try:
        named = json.loads(env.get("SUPABASE_SECRET_KEYS") or "{}")
    except ValueError:
        named = {}
    if isinstance(named, dict):
        keys |= {v for v in named.values() if isinstance(v, str)}
    keys.discard("")
    return keys


def jwt_claims(token: str, secret: str | None) -> dict[str, Any]:
    """The claims of a JWT: verified (HS256) with ``secret`` when one is given, else read as they are."""
    if secret:
        import jwt  # PyJWT; installed with the server

        header = jwt.get_unverified_header(token)
        if header.get("alg") == "HS256":
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, secret, algorithms=["HS256"], options={"verify_aud": False}
                )
            except jwt.PyJWTError as exc:
                raise Unresolved(f"its JWT is not valid: {exc}") from None
            return claims
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        raise Unresolved("its JWT cannot be read") from None
    if not isinstance(decoded, dict):
        raise Unresolved("its JWT cannot be read")
    return decoded


def scope_of_claims(claims: dict[str, Any]) -> Scope:
    role = claims.get("role")
    if isinstance(role, str) and role in SERVICE_ROLES:
        return Scope(None)
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise Unresolved("its JWT names no user (sub)")
    try:
        return Scope(str(uuid.UUID(sub)))
    except ValueError:
        raise Unresolved("its JWT's sub is not a user id") from None


class DirectRpc:
    """The queue's SQL functions for a worker whose service is down. Thread-safe."""

    def __init__(
        self,
        database_url: str | None,
        supabase_client: Any,
        token: str | None,
        user_id: str | None,
    ) -> None:
        self.database_url = database_url
        self.supabase_client = supabase_client
        self.token = token
        self.user_id = user_id
        self._scope: Scope | None = None
        self._db: Any = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.database_url is not None or self.supabase_client is not None

    @property
    def via_supabase(self) -> bool:
        return self.database_url is None and self.supabase_client is not None

    # -- whose tasks ---------------------------------------------------------------------------------

    def scope(self, reason: str) -> Scope:
        """The scope of the worker's token (resolved once); ``ServiceUnavailable`` when it has none."""
        if self._scope is None:
            try:
                scope = self._resolve()
            except Unresolved as exc:
                log.warning("no direct-RPC fallback: the token names nobody it could act for (%s)", exc)
                raise ServiceUnavailable(
                    f"{reason}; and the fallback cannot act for this token ({exc})"
                ) from None
            if self.user_id is not None:
                if scope.user_id is not None and scope.user_id != str(uuid.UUID(self.user_id)):
                    raise ServiceUnavailable(f"{reason}; and the token is not user {self.user_id}'s")
                scope = Scope(str(uuid.UUID(self.user_id)))
            self._scope = scope
        return self._scope

    def _resolve(self) -> Scope:
        token = self.token
        if not token:
            return Scope(None)
        if token in service_keys() or token.startswith("sb_secret_"):
            return Scope(None)
        if _JWT_SHAPE.match(token):
            return scope_of_claims(jwt_claims(token, os.environ.get("SUPABASE_JWT_SECRET")))
        digest = hashlib.sha256(token.encode()).hexdigest()
        if self.via_supabase:
            rows = self._supabase("taskclaim_token_user", {"p_jti_hash": digest})
        else:
            rows = self._execute("token_user", {"jti_hash": digest})
        if not rows:
            raise Unresolved("no such personal access token, or it is revoked or expired")
        return Scope(str(rows[0]["user_id"]))

    # -- the calls -----------------------------------------------------------------------------------

    def call(self, query_name: str, params: dict[str, Any], reason: str) -> list[dict[str, Any]]:
        """``query_name`` of sql/queries.sql with ``user_id`` set to the token's scope."""
        scope = self.scope(reason)
        return self._execute(query_name, {**params, "user_id": scope.user_id}, reason)

    def claim(
        self,
        worker_id: str,
        lease_seconds: int | None,
        claim_id: str | None,
        reason: str,
    ) -> list[dict[str, Any]]:
        user_id = self.scope(reason).user_id
        if self.via_supabase:  # the plan's RPCs, as supabase-py callers know them
            args: dict[str, Any] = {"p_table_name": "tasks", "p_worker_id": worker_id}
            if user_id is None:
                return self._supabase("func_claim_task", args)
            return self._supabase("func_claim_user_task", {**args, "p_user_id": user_id})
        params = {
            "worker_id": worker_id,
            "user_id": user_id,
            "lease_seconds": lease_seconds or limits.default_lease_seconds(os.environ),
            "claim_id": claim_id,
        }
        return self._execute("claim", params, reason)

    def claim_batch(
        self,
        worker_id: str,
        max_tasks: int,
        lease_seconds: int,
        task_types: list[str] | None,
        reason: str,
    ) -> list[dict[str, Any]]:
        args: dict[str, Any] = {
            "worker_ids": [worker_id] * max_tasks,
            "user_id": self.scope(reason).user_id,
            "lease_seconds": lease_seconds,
        }
        if task_types is not None:
            args["task_types"] = task_types
        if self.via_supabase:
            rows = self._supabase("taskclaim_claim_batch", {f"p_{k}": v for k, v in args.items()})
        else:
            rows = self._execute("claim_batch" if task_types is None else "claim_batch_by_type", args, reason)
        return sorted(rows, key=lambda row: int(row.get("ordinal", 0)))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- plumbing ------------------------------------------------------------------------------------

    def _supabase(self, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.supabase_client.rpc(name, args).execute().data or [])

    def _execute(self, query_name: str, params: dict[str, Any], reason: str = "") -> list[dict[str, Any]]:
        if self.database_url is None:
            raise ServiceUnavailable(
                f"{reason}; and no fallback is configured (set DATABASE_URL or SUPABASE_DB_URL)"
            )
        import psycopg
        from psycopg.rows import dict_row

        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._db is None or self._db.closed:
                        self._db = psycopg.connect(
                            self.database_url,
                            autocommit=True,
                            row_factory=dict_row,
                            prepare_threshold=prepare_threshold(pooler_mode(self.database_url, os.environ)),
                        )
                    rows = self._db.execute(query(query_name), params).fetchall()
                    return [dict(r) for r in rows]
                except psycopg.OperationalError as exc:
                    self._db = None
                    if attempt == 2:
                        raise ServiceUnavailable(f"{reason}; and the database is unreachable: {exc}") from exc
                except psycopg.Error as exc:
                    refusal = queue_error(exc.sqlstate)
                    if refusal is None:
                        raise
                    error = NotHeld if refusal.status == 409 else ClientError
                    raise error(exc.diag.message_primary or str(exc), refusal.status) from exc
        raise AssertionError("unreachable")
