"""The Edge Functions check what the service checks: their contract.json is generated from the same
limits and body Structs, and must be regenerated (``./dev schema``) whenever those change."""

from __future__ import annotations

import json

from taskclaim import limits
from taskclaim.handlers import FUNCTIONS
from tests.schema import CONTRACT, contract


def test_contract_json_is_what_the_python_sources_generate() -> None:
    assert CONTRACT.read_text() == contract(), f"{CONTRACT} is out of date: run ./dev schema"


def test_the_contract_names_every_route_with_its_body_limit_and_every_limit() -> None:
    document = json.loads(CONTRACT.read_text())
    assert {name: f["body_limit"] for name, f in document["functions"].items()} == {
        name: function.body_limit for name, function in FUNCTIONS.items()
    }
    assert document["limits"]["MAX_SAFE_INTEGER"] == limits.MAX_SAFE_INTEGER
    assert all(f["body"] in document["schemas"] for f in document["functions"].values())


def test_every_route_has_an_edge_function() -> None:
    entries = CONTRACT.parents[1].glob("*/index.ts")
    served = {path.parent.name for path in entries if not path.parent.name.startswith("_")}
    assert served == set(FUNCTIONS)
