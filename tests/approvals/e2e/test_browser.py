"""The approval page in a real headless browser (Debian's chromium, driven by Selenium): open the
link from the newest .eml, read the exact command (markup in it shown as text, no script run),
press Approve, see the outcome; the agent then fetches the result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devhost.smtp import read_message
from tests.approvals.e2e.conftest import LINK, Flow

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
INJECTED = ("UPDATE customers SET notes = 'e2e-run;' WHERE id = 211 "
            "-- <b id=injected>x</b><script>document.title='pwned'</script>")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian chromium and chromium-driver are not installed (scripts/system-deps.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,1100"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def newest_link(flow: Flow, request_id: str, to: str) -> str:
    flow.links(request_id)  # waits until the mails are there
    for path in sorted((flow.stack.state_dir / "mail").glob("*.eml"), reverse=True):
        message = read_message(path)
        text = message.get_body(("plain",)).get_content()
        if message["To"].addresses[0].addr_spec == to and request_id in text:
            return LINK.findall(text)[0]
    raise AssertionError("no mail")


def test_approve_in_a_real_browser(flow, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    rid = flow.pending(INJECTED)["request_id"]
    browser.get(newest_link(flow, rid, "ada@dev.example"))
    assert browser.find_element(By.ID, "command").text == INJECTED  # exact, as text
    assert browser.find_elements(By.ID, "injected") == []  # no markup was interpreted
    assert browser.title != "pwned"
    assert browser.find_element(By.ID, "target").text == "demo-postgres"
    assert browser.find_element(By.ID, "risk").text == "write"
    assert browser.find_element(By.ID, "reason").text == "e2e: tidy a test customer"
    assert "min" in browser.find_element(By.ID, "time-left").text
    assert "Devin (dev agent)" in browser.find_element(By.ID, "requester").text
    # the page's own style applies (CSP nonce), nothing else loads
    assert browser.find_element(By.ID, "approve").value_of_css_property("background-color") == "rgba(16, 124, 16, 1)"
    browser.save_screenshot(str(tmp_path / "approval-page.png"))
    assert flow.status(rid)["status"] == "pending"  # opening decided nothing

    browser.find_element(By.ID, "approve").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "outcome")))
    assert browser.find_element(By.ID, "outcome").text == "Approved", browser.page_source
    assert "runs now" in browser.find_element(By.ID, "state").text
    browser.save_screenshot(str(tmp_path / "approval-outcome.png"))
    done = flow.wait_status(rid, "done", "failed")
    assert done["status"] == "done" and done["result"]["affected_rows"] == 1

    browser.back()
    browser.refresh()  # the spent link shows no buttons any more
    assert browser.find_elements(By.ID, "approve") == []
