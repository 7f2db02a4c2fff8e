"""Who is calling: the service, or one user. DESIGN.md's four steps, in order.

1. No ``Authorization: Bearer <token>`` -> 401.
2. Equal (constant time) to the service role key or a value of ``SUPABASE_SECRET_KEYS`` -> service.
3. Shaped like a JWT -> verified (HS256 with the JWT secret; ES256/RS256 through the JWKS), algorithm
   pinned, ``exp`` required and enforced. Role ``service_role``/``supabase_admin`` -> service; else ``sub``.
4. Anything else is a personal access token, looked up by its SHA-256 -> its user; else 403.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from taskclaim.config import Settings
from taskclaim.exceptions import AuthError
from taskclaim.jwks import ASYMMETRIC_ALGORITHMS, JwksCache
from taskclaim.notifier import ReadyNotifier
from taskclaim.queue import Queue
from taskclaim.tokens import token_hash

log = logging.getLogger("taskclaim.auth")

SERVICE_ROLES = frozenset({"service_role", "supabase_admin"})
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class Caller:
    """The service (``user_id`` is None) or one user."""

    user_id: uuid.UUID | None

    @property
    def is_service(self) -> bool:
        return self.user_id is None


SERVICE = Caller(user_id=None)


def caller_from_claims(claims: Any) -> Caller:
    """Who the verified claims of a JWT name: the service for a ``role`` of ``service_role`` or
    ``supabase_admin``, else the user whose UUID is ``sub``. Anything else, of any shape, is a 403."""
    if not isinstance(claims, dict):
        raise AuthError(403, "JWT claims must be an object")
    role = claims.get("role")
    if role is not None and not isinstance(role, str):
        raise AuthError(403, "JWT role must be a string")
    if role in SERVICE_ROLES:
        return SERVICE
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise AuthError(403, "JWT has no user (sub)")
    try:
        return Caller(user_id=uuid.UUID(sub))
    except ValueError:
        raise AuthError(403, "JWT sub is not a user id") from None


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError(401, "missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError(401, "Authorization must be a Bearer token")
    token = token.strip()
    if not token:
        raise AuthError(401, "empty Bearer token")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise AuthError(403, "token not accepted")
    return token


# While notifications arrive, a looked-up token is trusted this long: any change to its row notifies
# (taskclaim_tokens) and drops it from the cache at once. Otherwise, TASKCLAIM_TOKEN_CACHE_SECONDS.
TRUSTED_TOKEN_SECONDS = 300.0


class Authenticator:
    def __init__(
        self, settings: Settings, queue: Queue, jwks: JwksCache, notifier: ReadyNotifier | None = None
    ) -> None:
        keys = [settings.service_role_key, *settings.secret_keys]
        self._service_keys = [k.encode() for k in keys if k]
        self._jwt_secret = settings.jwt_secret
        self._jwks = jwks
        self._queue = queue
        self._cache_seconds = settings.token_cache_seconds
        # token hash -> (user, cached until, trusted until while notifications arrive, the LISTEN epoch)
        self._token_cache: dict[str, tuple[uuid.UUID, float, float, int]] = {}
        self._notifier = notifier
        self._token_changes = 0  # notifications of token changes so far
        if notifier is not None:
            notifier.on_token_change = self.forget_token

    def forget_token(self, jti_hash: str) -> None:
        """The token's row changed (revoked, expiry moved, deleted): look it up again next time."""
        self._token_changes += 1
        self._token_cache.pop(jti_hash, None)

    async def authenticate(self, authorization: str | None) -> Caller:
        token = bearer_token(authorization)
        if self._is_service_key(token):
            return SERVICE
        if _JWT_SHAPE.match(token):
            return await self._from_jwt(token)
        return await self._from_personal_token(token)

    def _is_service_key(self, token: str) -> bool:
        candidate = token.encode()
        matched = False
        for key in self._service_keys:  # compare with every key: the time does not tell which matched
            matched |= hmac.compare_digest(candidate, key)
        return matched

    async def _from_jwt(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(403, "malformed JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or not (kid is None or isinstance(kid, str)):
            raise AuthError(403, "malformed JWT")
        key: Any
        if algorithm == "HS256" and self._jwt_secret:
            key = self._jwt_secret
        elif algorithm in ASYMMETRIC_ALGORITHMS and self._jwks.configured:
            jwk = await self._jwks.key(kid)
            if jwk is None or jwk.algorithm_name != algorithm:
                raise AuthError(403, "JWT signed by an unknown key")
            key = jwk
        else:
            raise AuthError(403, f"JWT algorithm {algorithm[:20]!r} not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(403, "JWT expired") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthError(403, "JWT not accepted") from None
        return caller_from_claims(claims)

    async def _from_personal_token(self, token: str) -> Caller:
        digest = token_hash(token)
        now = time.monotonic()
        cached = self._token_cache.get(digest)
        if cached is not None:
            user, until, trusted_until, epoch = cached
            if now < until or (now < trusted_until and self._told_of_changes(epoch)):
                return Caller(user_id=user)
        notifier = self._notifier
        epoch = notifier.epoch if notifier is not None else 0
        arriving = notifier is not None and notifier.arriving  # before the look-up: nothing missed after
        changes = self._token_changes
        row = await self._queue.token_user(digest)
        if row is None:
            self._token_cache.pop(digest, None)
            raise AuthError(403, "token not accepted")
        user_id: uuid.UUID = row["user_id"]
        ttl = self._cache_seconds
        # A change notified during the look-up may be this token's, and came before it was cached.
        trusted = max(ttl, TRUSTED_TOKEN_SECONDS) if arriving and ttl > 0 else ttl
        if self._token_changes != changes:
            trusted = ttl
        if row["expires_at"] is not None:
            left = row["expires_at"].timestamp() - time.time()
            ttl, trusted = min(ttl, left), min(trusted, left)
        if ttl > 0:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[digest] = (user_id, now + ttl, now + trusted, epoch)
        return Caller(user_id=user_id)

    def _told_of_changes(self, epoch: int) -> bool:
        """Whether every change to a token's row since ``epoch`` would have reached forget_token."""
        notifier = self._notifier
        return notifier is not None and notifier.arriving and notifier.epoch == epoch
