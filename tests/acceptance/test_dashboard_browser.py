"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): it shows what the token may
see, and its buttons act through the service's own routes. Deselected, with a summary line, where no
Chromium is installed (tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.acceptance.conftest import SERVICE_KEY, Credentials, bearer
from tests.conftest import chromium_path
from tests.helpers import Conn, make_project, make_task, task, wait_until
from tests.processes import ServiceProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab; a script error or a resource the page's CSP refused fails the test. (An HTTP error
    answer is logged as a console error too; a test that wants one checks what the page says.)"""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console: {message.text}")

    tab.on("console", console)
    yield tab
    context.close()
    assert not problems, problems


def post(service: ServiceProcess, name: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{service.url}/functions/v1/{name}", json=body, headers=bearer(SERVICE_KEY))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def claim(service: ServiceProcess, worker: str) -> dict[str, Any]:
    held = post(service, "claim-next-task", {"worker_id": worker, "lease_seconds": 300})
    return {k: held[k] for k in ("task_id", "worker_id", "attempt")}


def open_dashboard(page: Page, service: ServiceProcess, token: str) -> None:
    page.goto(f"{service.url}/#token={token}")
    expect(page.locator("#status")).to_contain_text("Updated")


def test_it_shows_a_task_a_failure_and_a_holder_and_its_buttons_retry_and_cancel(
    db: Conn, service: ServiceProcess, page: Page
) -> None:
    project = make_project(db)
    failed = make_task(db, project, task_type="transcode")
    post(service, "fail-task", {**claim(service, "gpu-1"), "error": "out of memory on gpu-1"})
    running = make_task(db, project, task_type="render")
    claim(service, "gpu-7")
    queued = make_task(db, project, task_type="render", params={"frame": 42})

    open_dashboard(page, service, SERVICE_KEY)
    expect(page.locator("#scope")).to_have_text("scope: every user's tasks (service key)")
    expect(page.locator("#tasks tbody")).to_contain_text(str(queued)[:8])
    failed_row = page.locator("#failed tbody tr", has_text=str(failed)[:8])
    expect(failed_row).to_contain_text("out of memory on gpu-1")
    expect(failed_row).to_contain_text("1 of 3")
    running_row = page.locator("#running tbody tr", has_text=str(running)[:8])
    expect(running_row).to_contain_text("gpu-7")
    expect(running_row).to_contain_text("s left")
    expect(page.locator("#counts tfoot")).to_contain_text("total")

    failed_row.get_by_role("button", name="retry").click()
    wait_until(lambda: task(db, failed)["status"] == "Queued", "the retried task to be queued again")
    assert task(db, failed)["attempts"] == 0
    expect(page.locator("#status")).to_contain_text("queued again")
    expect(page.locator("#failed tbody")).to_have_text("no failed tasks")

    page.once("dialog", lambda dialog: dialog.accept())
    running_row.get_by_role("button", name="cancel").click()
    wait_until(lambda: task(db, running)["status"] == "Cancelled", "the cancelled task")
    expect(page.locator("#running tbody")).to_have_text("nothing in progress")

    page.locator(f'#tasks a[data-task="{queued}"]').click()
    expect(page.locator("#detail")).to_contain_text('"frame": 42')


def test_a_users_token_sees_only_that_user_and_task_text_stays_text(
    db: Conn, service: ServiceProcess, page: Page
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    hostile = "<img src=x onerror=\"document.title='owned'\">"
    mine = make_task(db, make_project(db, alice), task_type="render")
    post(service, "fail-task", {**claim(service, "w"), "error": hostile})
    theirs = make_task(db, make_project(db, bob), task_type="render")

    open_dashboard(page, service, Credentials.user_jwt(alice))
    expect(page.locator("#scope")).to_have_text(f"scope: user {alice}")
    expect(page.locator("#failed tbody")).to_contain_text(hostile)
    expect(page.locator("#tasks tbody")).to_contain_text(str(mine)[:8])
    expect(page.locator("#tasks tbody")).not_to_contain_text(str(theirs)[:8])
    assert page.locator("img").count() == 0 and page.title() == "taskclaim"

    page.locator("#filters select[name=status]").select_option("Queued")
    page.locator("#filters button").click()
    expect(page.locator("#tasks tbody")).to_have_text("no tasks match")


def test_the_task_table_pages_with_the_cursor(db: Conn, service: ServiceProcess, page: Page) -> None:
    project = make_project(db)
    for _ in range(30):
        make_task(db, project, task_type="page")
    open_dashboard(page, service, SERVICE_KEY)
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(25)
    page.locator("#older").click()
    expect(page.locator("#page")).to_have_text("page 2")
    expect(rows).to_have_count(5)
    expect(page.locator("#older")).to_be_disabled()
    page.locator("#newer").click()
    expect(rows).to_have_count(25)
    expect(page.locator("#newer")).to_be_disabled()


def test_a_wrong_token_is_said_on_the_page(service: ServiceProcess, page: Page) -> None:
    page.goto(f"{service.url}/#token=not-a-token")
    expect(page.locator("#status")).to_contain_text("Could not read the queue")
    expect(page.locator("#status")).to_have_class("error")
