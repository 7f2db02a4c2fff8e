"""The named SQL blocks of ``sql/queries.sql``, loaded once into a dict.

A block starts with a line ``-- name --``; comment lines inside a block are dropped. Only the standard
library is used, so the worker client can load the same queries without the server's dependencies.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_]+) --$")


def parse(text: str) -> dict[str, str]:
    """Split ``text`` into ``{name: query}``; text before the first header is ignored."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line.strip())
        if header:
            name = header.group(1)
            if name in blocks:
                raise ValueError(f"query {name!r} is defined twice")
            current = blocks[name] = []
        elif current is not None and not line.lstrip().startswith("--"):
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in blocks.items()}


@cache
def queries() -> dict[str, str]:
    text = resources.files("taskclaim").joinpath("sql/queries.sql").read_text(encoding="utf-8")
    return parse(text)


def query(name: str) -> str:
    """The SQL of the block ``name``; a ``KeyError`` names a block that does not exist."""
    return queries()[name]
