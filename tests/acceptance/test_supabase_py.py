"""supabase-py's ``functions.invoke``, as the README shows it, against both runtimes: a claim comes back as
the body's bytes, a 204 as empty bytes, and a refused token as ``FunctionsHttpError`` with its status."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from supabase import create_client
from supabase.lib.client_options import SyncClientOptions
from supabase_functions.errors import FunctionsHttpError

from tests.acceptance.conftest import SERVICE_KEY, Server
from tests.helpers import Conn, make_project, make_task, personal_token


def test_functions_invoke_claims_with_a_users_token_and_a_204_is_empty_bytes(
    db: Conn, server: Server
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    make_task(db, make_project(db, bob))
    alices = make_task(db, make_project(db, alice), params={"frame": 7})
    token = personal_token(db, alice)
    http = httpx.Client(timeout=30)  # given, so the test closes it (supabase-py never closes its own)
    supabase = create_client(server.url, SERVICE_KEY, options=SyncClientOptions(httpx_client=http))
    options = {"body": {"worker_id": "gpu-1"}, "headers": {"Authorization": f"Bearer {token}"}}

    data = supabase.functions.invoke("claim-next-task", invoke_options=options)
    assert isinstance(data, bytes)  # without responseType "json", the body as it came
    claimed = json.loads(data) if data else None
    assert claimed is not None and claimed["task_id"] == str(alices) and claimed["params"] == {"frame": 7}
    assert supabase.functions.invoke("claim-next-task", invoke_options=options) == b""  # 204: none left

    refused = {**options, "headers": {"Authorization": "Bearer tcp_not-a-real-token"}}
    with pytest.raises(FunctionsHttpError) as caught:
        supabase.functions.invoke("claim-next-task", invoke_options=refused)
    assert caught.value.status == 403  # a token that names nobody, as the plan answers it
    http.close()
