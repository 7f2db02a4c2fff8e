"""Which PostgreSQL taskclaim uses: the configured URL, else the embedded one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from taskclaim.config import Settings
from taskclaim.embedded import EmbeddedPostgres


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yield the URL to use. With none configured, the embedded server is started (or shared) for
    the duration of the block and released after it."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    try:
        yield url
    finally:
        server.release()
