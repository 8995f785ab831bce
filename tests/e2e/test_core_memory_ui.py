"""E2E: the web UI's Core memory page in a real browser (Debian's Chromium, Playwright, as
tests/e2e/test_web_ui.py): a user creates a block, sees its size against its limit, appends a line,
edits the value, and deletes it; each change is what the REST API then answers."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.test_web_ui import Tab, browser, issue_key  # noqa: F401 - the module's browser fixture

pytestmark = pytest.mark.usefixtures("services")


def test_a_user_creates_appends_edits_and_deletes_a_block(browser, services, gateway):  # noqa: F811
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
        assert value.input_value() == "Ana is an SRE.\nAna lives in Lyon."
        value.fill("Ana is an SRE in Porto.")
        card.get_by_role("button", name="Save").click()
        page.get_by_text("Saved human").wait_for()
        block = api.get("/v1/core-memory/human").json()
        assert block["value"] == "Ana is an SRE in Porto." and block["version"] == 3 and block["limit_tokens"] == 40
        card.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        page.get_by_test_id("core-empty").wait_for()
        tab.shot("core-memory")
        assert api.get("/v1/core-memory/human").status_code == 404
        assert tab.errors == []
    finally:
        api.close()
        tab.context.close()
