"""The README's screenshot of the dashboard: ``.venv/bin/python -m tests.screenshot docs/dashboard.png``.

It runs ``taskclaim serve`` on a throwaway embedded PostgreSQL, queues tasks of a few types, works some of
them off over HTTP for 40 s while the page is open (so the throughput chart has a line), fails a few,
leaves three in progress, and photographs the page in Debian's Chromium.
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
from playwright.sync_api import sync_playwright

from taskclaim import migrations
from taskclaim.embedded import EmbeddedPostgres
from tests.conftest import chromium_path
from tests.processes import ServiceProcess

KEY = "screenshot-service-key-" + "s" * 20
ERRORS = ["CUDA out of memory on gpu-3", "input file is not a video: frame_0017.png", "timed out after 600 s"]


def fill(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        project = conn.execute(
            "insert into public.projects (user_id, name) values (gen_random_uuid(), 'films') returning id"
        ).fetchone()
        assert project is not None
        for task_type, count in (("render", 1800), ("transcode", 700), ("thumbnail", 400)):
            conn.execute(
                "insert into public.tasks (project_id, task_type, params) select %s, %s,"
                " jsonb_build_object('frame', n) from generate_series(1, %s) n",
                (project[0], task_type, count),
            )


def work(base: str, stop: threading.Event) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base + "/functions/v1", headers=auth) as http:
        while not stop.is_set():
            batch = http.post(
                "/claim-tasks", json={"worker_id": "bench-1", "max_tasks": random.randint(1, 12)}
            )
            for held in batch.json()["tasks"] if batch.status_code == 200 else []:
                holder = {k: held[k] for k in ("task_id", "worker_id", "attempt")}
                if random.random() < 0.02:
                    http.post("/fail-task", json={**holder, "error": random.choice(ERRORS), "retry": False})
                else:
                    http.post("/complete-task", json={**holder, "result": {"ok": True}})
            time.sleep(random.uniform(0.05, 0.4))


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as directory:
        server = EmbeddedPostgres(Path(directory) / "pg")
        url = server.start()
        try:
            migrations.migrate(url)
            fill(url)
            env = {"DATABASE_URL": url, "SUPABASE_SERVICE_ROLE_KEY": KEY, "TASKCLAIM_DATA_DIR": directory}
            service = ServiceProcess(env, Path(directory) / "serve.log").start()
            try:
                for worker in ("gpu-1", "gpu-2", "gpu-3"):
                    body = {"worker_id": worker, "lease_seconds": 600}
                    httpx.post(
                        f"{service.url}/functions/v1/claim-next-task",
                        json=body,
                        headers={"Authorization": f"Bearer {KEY}"},
                    )
                stop = threading.Event()
                worker_thread = threading.Thread(target=work, args=(service.url, stop))
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=chromium_path(), args=["--no-sandbox"]
                    )
                    page = browser.new_page(viewport={"width": 1300, "height": 1450})
                    page.goto(f"{service.url}/#token={KEY}")
                    worker_thread.start()
                    time.sleep(40)
                    page.screenshot(path=str(out))
                    stop.set()
                    worker_thread.join()
                    browser.close()
            finally:
                service.stop()
        finally:
            server.release()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png"))
