"""What only the Edge Functions' side needs beyond the shared contract suite: a database that cannot be
reached, and the local router's own answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.acceptance.conftest import SERVICE_KEY, bearer
from tests.edge import EdgeProcess
from tests.processes import free_port


def test_an_unreachable_database_is_a_503_with_retry_after(tmp_path: Path) -> None:
    closed = free_port()
    env = {
        "SUPABASE_DB_URL": f"postgresql://postgres@127.0.0.1:{closed}/postgres",
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
        "TASKCLAIM_POOL_TIMEOUT": "1",
    }
    edge = EdgeProcess(env, tmp_path / "edge.log", free_port()).start(healthy=False)
    try:
        with httpx.Client(base_url=edge.url, timeout=30) as http:
            for name in ("claim-next-task", "task-counts"):
                response = http.post(f"/functions/v1/{name}", headers=bearer(SERVICE_KEY))
                assert response.status_code == 503, response.text
                assert response.json() == {"error": "database unavailable"}
                assert response.headers["retry-after"] == "2"
            assert http.get("/health").status_code == 503
            # Refusals that need no database are still answered as such.
            assert http.post("/functions/v1/claim-next-task").status_code == 401
    finally:
        edge.stop()
