"""The OpenAPI document: every route, and the limits the service enforces."""

from __future__ import annotations

from typing import Any

import msgspec

from taskclaim import limits
from taskclaim.config import Settings
from taskclaim.handlers import FUNCTIONS
from taskclaim.openapi import openapi_document


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


def test_every_request_schema_in_the_document_is_the_struct_the_service_decodes_with() -> None:
    document = openapi_document()
    components = document["components"]["schemas"]
    for name, function in FUNCTIONS.items():
        ref = document["paths"][f"/functions/v1/{name}"]["post"]["requestBody"]["content"]["application/json"]
        schema = components[ref["schema"]["$ref"].rsplit("/", 1)[1]]
        (_,), defs = msgspec.json.schema_components([function.body])
        generated = defs[function.body.__name__]
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == set(generated["properties"])
        assert schema.get("required", []) == generated.get("required", [])


def test_the_document_states_the_limits_the_service_enforces() -> None:
    schemas = openapi_document(max_lease_seconds=600)["components"]["schemas"]

    def field(struct: str, name: str) -> dict[str, Any]:
        value: dict[str, Any] = schemas[struct]["properties"][name]
        options: list[dict[str, Any]] = value.get("anyOf", [value])
        return options[0]

    worker_id = field("ClaimNextTask", "worker_id")
    assert (worker_id["minLength"], worker_id["maxLength"]) == (1, limits.MAX_NAME_LENGTH)
    assert field("CreateTask", "task_type")["maxLength"] == limits.MAX_NAME_LENGTH
    assert field("CompleteTask", "attempt")["minimum"] == 1
    assert field("CreateTask", "max_attempts")["maximum"] == limits.MAX_MAX_ATTEMPTS
    assert field("FailTask", "error")["maxLength"] == limits.MAX_ERROR_LENGTH
    assert field("CompleteTask", "output_location")["maxLength"] == limits.MAX_OUTPUT_LOCATION_LENGTH
    assert field("ClaimTasks", "lease_seconds")["maximum"] == 600  # this service's maximum
