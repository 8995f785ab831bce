"""E2E: the web UI (ui/, served by the gateway at /) in a real browser: Debian's Chromium,
headless, driven by Playwright (never a browser the test tool downloads).

A user signs in with their key, sees a memory added through the API appear, searches,
edits it (the change shows at once: read-your-writes), reads its history, sees the graph,
and deletes memories; another user's key sees none of it. The page must log no console
error and throw nothing. Screenshots of every page go to test-artifacts/ui/ on every run.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from cli.memory_file import Header, header_line, memory_line, read_file
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("services")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "ui"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the web UI tests drive Debian's Chromium; run `make install` "
                    "(it installs the chromium package)")
    if not (REPO / "ui" / "dist" / "index.html").is_file():
        pytest.fail("ui/dist is missing: run `make install` (or `make ui`) to build the web UI")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield chromium
        chromium.close()


class Tab:
    """A page of a fresh browser context, with every console error and page error it logs."""

    def __init__(self, browser, base_url: str, **context):
        self.context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 860}, **context)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(
            f"console: {m.text} ({m.location.get('url')})"))
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def sign_in(self, key: str) -> None:
        self.page.goto("/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("navigation", name="Main").wait_for()

    def go(self, label: str) -> None:
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()


def post(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    """A setup write, retried as the API asks when the shared stack is busy for a moment
    (503 log_unavailable: "retry with the same Idempotency-Key"), like the SDK does."""
    key = f"ui-test-{uuid.uuid4()}"
    for attempt in range(5):
        answer = client.post(path, json=body, headers={"Idempotency-Key": key})
        if answer.status_code not in (429, 503):
            return answer
        time.sleep(float(answer.headers.get("Retry-After", 1)) * (attempt + 1))
    return answer


def issue_key(gateway: httpx.Client, user_id: str) -> dict:
    answer = post(gateway, "/v1/keys", {"user_id": user_id, "scopes": ["read", "write"]})
    assert answer.status_code == 201, answer.text
    return answer.json()


def add(base_url: str, key: str, text: str, **fields) -> tuple[str, str]:
    """A memory added through the REST API with the user's key, once Postgres shows it: (id, token)."""
    with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as api:
        answer = post(api, "/v1/memories", {"text": text, **fields})
        assert answer.status_code == 202, answer.text
        memory_id, token = answer.json()["results"][0]["id"], answer.json()["consistency_token"]
        api.get(f"/v1/memories/{memory_id}", params={"consistency_token": token}).raise_for_status()
        return memory_id, token


def wait_for_graph(base_url: str, key: str, token: str, entity: str | None = None) -> None:
    """The graph projector lags Postgres a little: wait until a graph read with the token answers
    and, given `entity`, shows it (a later write, such as an edit, whose token the page holds and
    the test does not: the page's own read would otherwise wait for it and may answer 503)."""
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as api:
        while True:
            answer = api.get("/v1/graph", params={"consistency_token": token})
            if answer.status_code == 200 and (entity is None or any(
                    e["name"] == entity for e in answer.json()["entities"])):
                return
            assert time.monotonic() < deadline, f"the graph did not apply the memory ({entity}) within 30 s"
            time.sleep(0.3)


@pytest.fixture
def people(gateway):
    run = uuid.uuid4().hex[:8]
    alice, bob = f"ui-alice-{run}", f"ui-bob-{run}"
    return {"run": run, "alice": alice, "bob": bob,
            "alice_key": issue_key(gateway, alice), "bob_key": issue_key(gateway, bob)}


def test_the_gateway_serves_the_ui_and_still_proxies_the_api(services, gateway):
    page = httpx.get(f"{services.gateway_url}/")
    assert page.status_code == 200 and '<div id="root">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-cache"
    deep = httpx.get(f"{services.gateway_url}/memories/{uuid.uuid4()}")
    assert deep.status_code == 200 and deep.text == page.text
    asset = re.search(r'src="(/assets/[^"]+\.js)"', page.text).group(1)
    script = httpx.get(f"{services.gateway_url}{asset}")
    assert script.status_code == 200 and "immutable" in script.headers["cache-control"]
    assert gateway.get("/v1/me").json()["scopes"]  # the API through the same origin
    assert httpx.get(f"{services.gateway_url}/v1/me").status_code == 401
    system = gateway.get("/ui/api/system")
    assert system.status_code == 200, system.text
    assert system.json()["health"]["status"] in ("ready", "degraded")
    assert httpx.get(f"{services.gateway_url}/ui/api/system").status_code == 401


def test_a_user_signs_in_sees_searches_edits_and_deletes_memories(browser, services, people):
    base, key = services.gateway_url, people["alice_key"]["key"]
    run = people["run"]
    tab = Tab(browser, base)
    page = tab.page
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)

    # Sign in.
    page.goto("/")
    expect(page.get_by_label("API key")).to_be_focused()
    tab.shot("sign-in")
    tab.sign_in(key)
    expect(page.get_by_test_id("acting-user")).to_have_text(people["alice"])
    expect(page).to_have_url(re.compile(r"/memories$"))

    # A memory added through the API appears in the table (Refresh).
    text = f"Alice works at Acme Corp in Berlin and her badge number is {run}"
    memory_id, token = add(base, key, text, app_id="ui-app", agent_id="ui-agent", categories=["work"])
    other_id, _ = add(base, key, f"Alice's cat Tomasz likes tuna ({run})", categories=["pets"])
    page.get_by_role("button", name="Refresh").click()
    row = page.locator(f'tr[data-memory-id="{memory_id}"]')
    expect(row).to_contain_text(text)
    expect(page.locator(f'tr[data-memory-id="{other_id}"]')).to_be_visible()
    expect(page.get_by_role("group", name="Categories").get_by_role("button", name="pets")).to_be_visible()
    tab.shot("memories")
    # A category chip filters the table.
    page.get_by_role("group", name="Categories").get_by_role("button", name="pets").click()
    expect(row).to_have_count(0)
    expect(page.locator(f'tr[data-memory-id="{other_id}"]')).to_be_visible()
    page.get_by_role("group", name="Categories").get_by_role("button", name="all").click()
    expect(row).to_be_visible()

    # Search: the result with its score and per-source ranks.
    tab.go("Search")
    page.get_by_label("Query").fill(f"badge number {run}")
    page.get_by_role("button", name="Search").click()
    hit = page.locator(f'[data-testid="search-results"] tr[data-memory-id="{memory_id}"]')
    expect(hit).to_be_visible()
    cells = hit.locator("td").all_inner_texts()
    assert float(cells[1]) > 0, cells  # the score
    assert any(c.strip().isdigit() for c in cells[2:]), f"no source ranked the hit: {cells}"
    tab.shot("search")
    # A source left out of an answer is named: the next answer (the real one) gets a degraded entry.
    def degraded(route):
        answer = route.fetch()
        body = {**answer.json(), "degraded": [{"source": "graph", "reason": "no answer within its budget of 250 ms"}]}
        route.fulfill(response=answer, json=body)

    page.route("**/v1/memories/search", degraded)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("degraded")).to_contain_text("graph (no answer within its budget of 250 ms)")
    expect(hit).to_be_visible()
    tab.shot("search-degraded")
    page.unroute("**/v1/memories/search")

    # Detail, edit (shown at once: the read waits for the edit's token), history.
    hit.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"/memories/{memory_id}$"))
    expect(page.get_by_test_id("memory-text")).to_have_text(text)
    tab.shot("memory-detail")
    page.get_by_role("button", name="Edit").click()
    edited = f"Alice works at Globex in Munich now; badge {run}"
    page.get_by_label("Text").fill(edited)
    tab.shot("memory-edit")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("memory-text")).to_have_text(edited)
    history = page.get_by_test_id("history")
    expect(history.locator("li")).to_have_count(2)
    expect(history).to_contain_text("MemoryUpdated")
    expect(history).to_contain_text(f"key:{people['alice_key']['prefix']}")  # the actor
    expect(history).to_contain_text(edited)
    tab.shot("memory-history")

    # The graph: cytoscape draws the user's entities (the edit's among them).
    wait_for_graph(base, key, token, entity="Globex")
    tab.go("Graph")
    graph = page.get_by_test_id("graph")
    expect(graph).to_have_attribute("data-node-count", re.compile(r"^[1-9]\d*$"))
    expect(graph.locator("canvas").first).to_be_visible()
    expect(graph).to_have_attribute("data-edge-count", re.compile(r"^[1-9]\d*$"))  # (Alice, works_at, Acme Corp) ...
    expect(graph).to_have_attribute("data-co-mention-count", re.compile(r"^[1-9]\d*$"))
    tab.shot("graph")
    # A type filter hides that type's entities.
    nodes = int(graph.get_attribute("data-node-count"))
    types = page.get_by_test_id("graph-types")
    types.get_by_label("person").uncheck()
    expect(graph).not_to_have_attribute("data-node-count", str(nodes))
    types.get_by_label("person").check()
    expect(graph).to_have_attribute("data-node-count", str(nodes))
    # An entity chosen (from the table of relations) shows its relations and its memories, one click away.
    page.get_by_text("Relations as a table").click()
    page.get_by_role("button", name="Alice", exact=True).first.click()
    chosen = page.get_by_test_id("graph-chosen")
    expect(chosen).to_contain_text("works_at")
    expect(chosen.get_by_test_id("graph-memories").get_by_role("link").first).to_be_visible()
    types.get_by_label("neighbourhood only").check()
    tab.shot("graph-neighbourhood")
    chosen.get_by_test_id("graph-memories").get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/memories/[0-9a-f-]{36}$"))

    # Apps & agents, System (health and sparklines after a few polls), Export / import.
    tab.go("Apps & agents")
    expect(page.get_by_test_id("ns-total")).to_have_text("2")
    tab.shot("namespaces")
    page.get_by_role("link", name="ui-app").click()  # an app's memories
    expect(page.get_by_label("app_id")).to_have_value("ui-app")
    expect(row).to_be_visible()
    expect(page.locator(f'tr[data-memory-id="{other_id}"]')).to_have_count(0)
    # The profile: the "work" memory under Projects, linking to it (built on read, or by a worker pass).
    tab.go("Profile")
    expect(page.get_by_test_id("profile-projects").locator(f'a[href="/memories/{memory_id}"]')).to_be_visible()
    expect(page.get_by_test_id("profile-version")).to_be_visible()
    tab.shot("profile")
    tab.go("System")
    expect(page.get_by_test_id("health")).to_contain_text(re.compile("ready|degraded"))
    expect(page.get_by_test_id("spark-API requests")).to_have_text(re.compile(r"\d"), timeout=15_000)
    tab.shot("system")
    tab.go("Export / import")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    exported = read_file(Path(download.value.path()).read_bytes(), people["alice"])  # as `recallstack import` reads it
    assert exported.header.count == 2 and {e.id for e in exported.entries} == {memory_id, other_id}
    tab.shot("export-import")

    # Dark mode.
    page.get_by_role("button", name="Switch to dark mode").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    tab.go("Memories")
    expect(row).to_be_visible()
    tab.shot("memories-dark")
    page.goto(f"/memories/{memory_id}")
    expect(page.get_by_test_id("memory-text")).to_have_text(edited)
    tab.shot("memory-detail-dark")
    page.get_by_role("button", name="Switch to light mode").click()

    # Delete from the detail page (the dialog confirms), then the other memory by bulk select.
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # Escape cancels
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(page).to_have_url(re.compile(r"/memories$"))
    expect(row).to_have_count(0)
    page.locator(f'tr[data-memory-id="{other_id}"]').get_by_role("checkbox").check()
    page.get_by_role("button", name="Delete selected (1)").click()
    tab.shot("bulk-delete-dialog")
    page.get_by_role("dialog").get_by_role("button", name="Delete 1").click()
    expect(page.locator(f'tr[data-memory-id="{other_id}"]')).to_have_count(0)
    expect(page.get_by_text("No memories here.")).to_be_visible()

    # Narrow screens: the navigation collapses behind Menu.
    page.set_viewport_size({"width": 420, "height": 860})
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    tab.shot("memories-narrow")

    # Sign out forgets the key.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    tab.context.close()
    assert tab.errors == [], tab.errors


def test_another_users_key_cannot_see_the_first_users_memories(browser, services, people, gateway):
    base = services.gateway_url
    run = people["run"]
    secret = f"Alice's vault code is {run}"
    memory_id, _ = add(base, people["alice_key"]["key"], secret)
    bob_memory, _ = add(base, people["bob_key"]["key"], f"Bob plays the oboe ({run})")
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    tab = Tab(browser, base)
    page = tab.page
    page.goto("/")  # by keyboard: the key field has the focus, Enter signs in
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(people["bob_key"]["key"])
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("acting-user")).to_have_text(people["bob"])
    expect(page.locator(f'tr[data-memory-id="{bob_memory}"]')).to_be_visible()
    page.locator(f'tr[data-memory-id="{bob_memory}"] a').focus()
    page.keyboard.press("Enter")  # a row's link opens the memory
    expect(page.get_by_test_id("memory-text")).to_have_text(f"Bob plays the oboe ({run})")
    page.go_back()
    expect(page.locator(f'tr[data-memory-id="{memory_id}"]')).to_have_count(0)
    expect(page.get_by_test_id("memories-table").locator("tbody tr")).to_have_count(1)
    tab.shot("second-user-memories")

    tab.go("Search")
    page.get_by_label("Query").fill(f"vault code {run}")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status").first).to_contain_text("results")
    expect(page.get_by_test_id("search-results")).not_to_contain_text(secret)
    expect(page.locator(f'tr[data-memory-id="{memory_id}"]')).to_have_count(0)

    # Import: a file as `recallstack export` writes it, into bob's memories.
    tab.go("Export / import")
    original = {"id": str(uuid.uuid4()), "memory": f"Bob imported this note ({run})", "metadata": {"from": "cli"},
                "categories": ["imported"], "importance": 0.5, "agent_id": None, "run_id": None, "app_id": None,
                "state": "active", "created_at": "2024-06-01T12:00:00+00:00", "updated_at": "2024-06-01T12:00:00+00:00",
                "occurred_at": "2024-06-01T12:00:00+00:00"}
    exported = (header_line(Header("someone", "2024-06-02T00:00:00+00:00", None, None, 1))
                + memory_line(original, include_vectors=False))
    page.get_by_label("File").set_input_files(files=[{"name": "notes.jsonl", "mimeType": "application/x-ndjson",
                                                      "buffer": exported.encode()}])
    expect(page.get_by_role("status").first).to_contain_text("Imported 1 of 1 memories")
    expect(page.get_by_label("Progress")).to_have_attribute("value", "1")
    tab.shot("import-done")
    tab.go("Memories")
    expect(page.get_by_test_id("memories-table")).to_contain_text(original["memory"])

    page.goto(f"/memories/{memory_id}")  # a deep link to alice's memory: not found for bob
    expect(page.get_by_role("alert")).to_contain_text("not")
    expect(page.get_by_test_id("memory-text")).to_have_count(0)
    tab.shot("second-user-denied")

    # Bob's key revoked: the next call answers 401 and the UI returns to the sign-in, saying why.
    revoked = gateway.delete(f"/v1/keys/{people['bob_key']['key_id']}", params={"reason": "web UI test"})
    assert revoked.status_code == 202, revoked.text
    tab.go("Memories")
    deadline = time.monotonic() + 10
    while not page.get_by_label("API key").is_visible():
        assert time.monotonic() < deadline, "the UI kept using a revoked key"
        page.wait_for_timeout(500)  # revoked everywhere within a second: read again
        try:
            page.get_by_role("button", name="Refresh").click(timeout=1_000)
        except Exception:  # the sign-in replaced the page meanwhile
            pass
    expect(page.get_by_role("alert")).to_contain_text("Signed out")
    assert page.evaluate("sessionStorage.length") == 0
    tab.shot("signed-out-revoked-key")
    tab.context.close()
    # The only errors: the browser's log lines of the refused reads (404 for alice's memory, 401 once revoked).
    unexpected = [e for e in tab.errors if not ("404" in e and memory_id in e or "status of 401" in e)]
    assert unexpected == [], unexpected


def test_an_admin_key_names_the_user_it_acts_for(browser, services, people):
    base, run = services.gateway_url, people["run"]
    memory_id, _ = add(base, people["alice_key"]["key"], f"Alice's note for the admin ({run})")
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    tab = Tab(browser, base)
    page = tab.page
    page.goto("/")
    page.get_by_label("API key").fill(os.environ["RECALLSTACK_API_KEY"])  # the session's admin key
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Act for user").fill(people["alice"])
    tab.shot("sign-in-admin")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_test_id("user-picker")).to_have_value(people["alice"])
    expect(page.locator(f'tr[data-memory-id="{memory_id}"]')).to_be_visible()
    page.get_by_test_id("user-picker").fill(people["bob"])
    page.get_by_role("button", name="Switch user").click()
    expect(page.get_by_text("No memories here.")).to_be_visible()
    expect(page.locator(f'tr[data-memory-id="{memory_id}"]')).to_have_count(0)
    tab.context.close()
    assert tab.errors == [], tab.errors
