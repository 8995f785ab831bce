"""E2E: the web UI's Core memory page in a real browser (Debian's Chromium, Playwright, as
tests/e2e/test_web_ui.py): a user creates a block, sees its size against its limit, appends a line,
edits the value, and deletes it; each change is what the REST API then answers."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.e2e.test_web_ui import TIMEOUT_MS, Tab, browser, issue_key  # noqa: F401 - the module's browser fixture

pytestmark = pytest.mark.usefixtures("services")


def _settled(read, done, seconds: float = 15.0):
    """The REST answer once the read model has applied the UI's last edit: this client holds no
    consistency token of the page's writes (the page's own reads do), so it reads until it sees it."""
    deadline = time.monotonic() + seconds
    while True:
        answer = read()
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_a_user_creates_appends_edits_and_deletes_a_block(browser, services, gateway):  # noqa: F811
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    user = f"ui-core-{uuid.uuid4().hex[:8]}"
    key = issue_key(gateway, user)["key"]
    tab = Tab(browser, services.gateway_url)
    api = httpx.Client(base_url=services.gateway_url, timeout=30, headers={"Authorization": f"Bearer {key}"})
    try:
        tab.sign_in(key)
        tab.go("Core memory")
        page = tab.page
        page.get_by_test_id("core-empty").wait_for()
        page.get_by_label("Label (a-z 0-9 _ -)").fill("human")
        page.get_by_label("Value", exact=True).last.fill("Ana is an SRE.")
        page.get_by_label("Limit in tokens (16-8,000; default 500)").fill("40")
        page.get_by_role("button", name="Create").click()
        card = page.get_by_test_id("core-block")
        card.get_by_test_id("core-size").filter(has_text="/ 40 tokens").wait_for()
        card.get_by_label("Append a line").fill("Ana lives in Lyon.")
        card.get_by_role("button", name="Append").click()
        page.get_by_text("Appended to human").wait_for()
        value = card.get_by_label("Value")
        expect(value).to_have_value("Ana is an SRE.\nAna lives in Lyon.")  # once the page has read the block again
        value.fill("Ana is an SRE in Porto.")
        card.get_by_role("button", name="Save").click()
        page.get_by_text("Saved human").wait_for()
        block = _settled(lambda: api.get("/v1/core-memory/human").json(), lambda b: b.get("version") == 3)
        assert block["value"] == "Ana is an SRE in Porto." and block["version"] == 3 and block["limit_tokens"] == 40
        card.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        page.get_by_test_id("core-empty").wait_for()
        tab.shot("core-memory")
        assert _settled(lambda: api.get("/v1/core-memory/human").status_code, lambda status: status == 404) == 404
        assert tab.errors == []
    finally:
        api.close()
        tab.context.close()
