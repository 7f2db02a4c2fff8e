"""Public keys for ES256/RS256 JWTs: from ``SUPABASE_JWKS``, else fetched from the JWKS URL and cached.

An unknown ``kid`` triggers a refetch (keys rotate), at most once per ``min_refetch_seconds`` so that a
flood of made-up ``kid``s cannot turn the service into a client hammering the auth server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import jwt

log = logging.getLogger("taskclaim.jwks")

ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")


def parse_jwks(document: str | dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """``{kid: key}`` of the usable ES256/RS256 signing keys of a JWKS document."""
    data = json.loads(document) if isinstance(document, str) else document
    keys: dict[str, jwt.PyJWK] = {}
    for entry in data.get("keys", []):
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            log.warning("skipping a JWKS key: %s", exc)
            continue
        if key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
            continue
        keys[entry.get("kid", "")] = key
    return keys


class JwksCache:
    def __init__(
        self,
        *,
        static_jwks: str | None = None,
        url: str | None = None,
        min_refetch_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._keys = parse_jwks(static_jwks) if static_jwks else {}
        self._static = static_jwks is not None
        self._url = url
        self._min_refetch = min_refetch_seconds
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        self._client = client

    @property
    def configured(self) -> bool:
        return self._static or self._url is not None

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        found = self._keys.get(kid or "")
        if found is not None or self._static or self._url is None:
            return found
        async with self._lock:
            found = self._keys.get(kid or "")
            if found is None and time.monotonic() - self._last_fetch >= self._min_refetch:
                await self._fetch()
                found = self._keys.get(kid or "")
        return found

    async def _fetch(self) -> None:
        assert self._url is not None
        self._last_fetch = time.monotonic()
        try:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=5.0)
            response = await self._client.get(self._url)
            response.raise_for_status()
            self._keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not fetch the JWKS from %s: %s", self._url, exc)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
