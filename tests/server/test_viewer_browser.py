"""The web viewer in a real headless Chromium against a real server: sign in with the
token, find a recorded run, open it (transcript, waterfall, error step), watch an
in-progress run turn completed without a reload, and check that captured text which
looks like HTML stays text and runs nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import Store
from tests.fakes import wire
from tests.fakes.server import FakeServer
from tests.server._api_support import (
    READ_TOKEN,
    THINKING,
    ServeProcess,
    client_for,
    record_anthropic_thinking_turn,
    record_error_turn,
    record_simple_turn,
    record_stream_without_usage,
    record_tool_turn,
)
from tests.server._browser import chromium_options, start_chromium

pytestmark = pytest.mark.slow

XSS_REPLY = "<img src=x onerror=alert(1)>"
XSS_USER = "<script>window.__pwned = 1; alert('x')</script> hello"
XSS_CHAT = "<b>chat</b><img src=y onerror=window.__pwned=2>"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    config = chatdebug.configure(sqlite_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        yield config.store
    finally:
        chatdebug.shutdown()


@pytest.fixture
def server(store: Store, sqlite_url: str) -> Iterator[ServeProcess]:
    """A real ``chatdebug serve`` on the database this test records into."""
    served = ServeProcess(sqlite_url)
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = chromium_options(tmp_path / "chromium-profile")
    driver = start_chromium(options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: webdriver.Chrome, timeout: float = 15.0) -> WebDriverWait[Any]:
    # Live updates re-render a run's sections: an element found just before one may be
    # gone when it is read, and the next poll finds its replacement.
    return WebDriverWait(
        driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )


def _no_alert(driver: webdriver.Chrome) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"an alert opened: {text!r}")


def _sign_in(driver: webdriver.Chrome, url: str) -> None:
    driver.get(url + "/")
    field = _wait(driver).until(ec.visibility_of_element_located((By.ID, "token")))
    field.send_keys("wrong-token")
    driver.find_element(By.ID, "login-button").click()
    error = _wait(driver).until(ec.visibility_of_element_located((By.ID, "login-error")))
    assert "not accepted" in error.text
    driver.find_element(By.ID, "token").send_keys(READ_TOKEN)
    driver.find_element(By.ID, "login-button").click()
    _wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#runs-body tr")))
    assert driver.execute_script("return sessionStorage.getItem('chatdebug.token')") == READ_TOKEN


def _row(driver: webdriver.Chrome, run_id: uuid.UUID) -> Any:
    return _wait(driver).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-run-id="{run_id}"]'))
    )


def _no_script_errors(driver: webdriver.Chrome) -> None:
    """Nothing failed in the page: no script error, no CSP or Trusted Types violation
    (the one expected failure is the sign-in probe's 401 before a token is given)."""
    severe = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "401 (Unauthorized)" not in entry["message"]
    ]
    assert severe == []


def _open(driver: webdriver.Chrome, scope: Any, css: str) -> str:
    """Open a lazily built <details> and return its text once built."""
    details = scope.find_element(By.CSS_SELECTOR, css)
    details.find_element(By.TAG_NAME, "summary").click()
    _wait(driver).until(lambda d: len(details.find_elements(By.XPATH, "./*")) > 1)
    return str(details.text)


def test_viewer_shows_runs_transcripts_and_waterfall(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer, tmp_path: Path
) -> None:
    chat = f"chat-{uuid.uuid4().hex[:6]}"
    tool_run = record_tool_turn(fake_server, chat)
    error_run = record_error_turn(fake_server, chat)
    thinking_run = record_anthropic_thinking_turn(fake_server, chat)
    assert chatdebug.flush()

    _sign_in(browser, server.url)
    row = _row(browser, tool_run)
    assert "completed" in row.text and "What's the weather in Paris?" in row.text
    error_row = _row(browser, error_run)
    assert "error" in error_row.find_element(By.CSS_SELECTOR, ".pill").text
    assert "row-error" in (error_row.get_attribute("class") or "")
    browser.save_screenshot(str(tmp_path / "runs-list.png"))

    # "Started before" an hour ago: none of these runs; the page says so.
    browser.find_element(By.ID, "filter-until").send_keys("1h")
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    _wait(browser).until(lambda d: "until=1h" in d.current_url)
    _wait(browser).until(lambda d: d.find_element(By.ID, "runs-empty").is_displayed())
    assert not browser.find_elements(By.CSS_SELECTOR, ".run-row")
    browser.back()
    _wait(browser).until(lambda d: "until=" not in d.current_url)
    _row(browser, tool_run)

    # The API's filters from the page: only the failed run is left.
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("error")
    browser.find_element(By.ID, "filter-user_id").send_keys("u-2")
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    _wait(browser).until(lambda d: "status=error" in d.current_url)
    _wait(browser).until(
        lambda d: (
            [r.get_attribute("data-run-id") for r in d.find_elements(By.CSS_SELECTOR, ".run-row")]
            == [str(error_run)]
        )
    )
    browser.back()
    row = _wait(browser).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{tool_run}"]')
    )
    row.find_element(By.CSS_SELECTOR, "a.run-link").click()
    _wait(browser).until(ec.presence_of_element_located((By.ID, "waterfall")))
    steps = browser.find_elements(By.CSS_SELECTOR, ".wf-step")
    assert [s.get_attribute("data-step") for s in steps] == ["1", "2", "3"]
    # Step 2 was rate limited once: a retried attempt, a backoff gap, then success.
    retried = steps[1]
    assert retried.get_attribute("data-retries") == "1"
    assert retried.find_elements(By.CSS_SELECTOR, ".seg.att-retried")
    assert retried.find_elements(By.CSS_SELECTOR, ".seg.backoff")
    assert retried.find_elements(By.CSS_SELECTOR, ".seg.att-ok")
    assert "2 attempts" in retried.text
    # The streamed step shows its time to first chunk.
    assert steps[2].find_elements(By.CSS_SELECTOR, ".tick.ttft")
    assert "first chunk" in steps[2].text

    step1 = browser.find_element(By.ID, "step-1")
    roles = [e.text for e in step1.find_elements(By.CSS_SELECTOR, ".msg-role")]
    assert roles[0].startswith("SYSTEM") and roles[1].startswith("USER")
    assert "You are a weather bot." in step1.text
    call = step1.find_element(By.CSS_SELECTOR, ".part.tool-call")
    assert "get_weather" in call.text and '"city": "Paris"' in call.text
    step2 = browser.find_element(By.ID, "step-2")
    assert "sunny" in step2.find_element(By.CSS_SELECTOR, ".part.tool-result").text
    assert "Sunny, 18°C" in step2.find_element(By.CSS_SELECTOR, ".msg.reply").text
    # Headers and the raw (redacted) bodies open on demand.
    card = step2.find_elements(By.CSS_SELECTOR, ".attempt-card")[0]
    assert "429" in card.text
    assert "retry-after-ms" in _open(browser, card, ".response-headers")
    body = _open(browser, card, ".request-body")
    assert '"role": "tool"' in body and "apiTESTkey" not in browser.page_source
    browser.execute_script("arguments[0].scrollIntoView()", step2)
    browser.save_screenshot(str(tmp_path / "run-page-step2.png"))
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(tmp_path / "run-page.png"))

    browser.get(f"{server.url}/#/chats/{chat}/runs/{error_run}")
    # Same document, new hash: wait for the error run's page to replace the other.
    failed = _wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#step-1.status-error"))
    )
    assert str(error_run) in browser.find_element(By.ID, "run-head").text
    assert "The server had an error" in failed.find_element(By.CSS_SELECTOR, ".step-error").text
    assert "500" in failed.find_element(By.CSS_SELECTOR, ".step-error").text
    browser.save_screenshot(str(tmp_path / "error-run.png"))

    # Reasoning is folded: present, closed, opened on demand.
    browser.get(f"{server.url}/#/chats/{chat}/runs/{thinking_run}")
    folded = _wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#step-1 .msg.reply details.reasoning"))
    )
    assert folded.get_attribute("open") is None
    assert not folded.find_element(By.CSS_SELECTOR, ".text-body").is_displayed()
    assert f"Reasoning ({len(THINKING)} characters)" in folded.text
    folded.find_element(By.TAG_NAME, "summary").click()
    assert folded.find_element(By.CSS_SELECTOR, ".text-body").text == THINKING
    reply = browser.find_element(By.CSS_SELECTOR, "#step-1 .msg.reply")
    assert "Autumn moonlight" in reply.text
    _no_alert(browser)
    _no_script_errors(browser)


class LongTurn:
    """A run held open in a thread after one completed call, until :meth:`finish`."""

    def __init__(self, fake_server: FakeServer, chat: str, message: str) -> None:
        fake_server.enqueue(wire.openai_reply("first part"))
        self._started = threading.Event()
        self._finish = threading.Event()
        self.run_id: uuid.UUID | None = None
        self._thread = threading.Thread(target=self._turn, args=(fake_server, chat, message))
        self._thread.start()
        assert self._started.wait(10)

    def _turn(self, fake_server: FakeServer, chat: str, message: str) -> None:
        with client_for(fake_server) as client, chatdebug.run(chat, first_message=message) as run:
            self.run_id = run.id
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            self._started.set()
            self._finish.wait(60)

    def finish(self) -> None:
        self._finish.set()
        self._thread.join(10)


def test_in_progress_run_turns_completed_without_reload(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer, tmp_path: Path
) -> None:
    chat = f"live-{uuid.uuid4().hex[:6]}"
    on_list = LongTurn(fake_server, chat, "slow one")
    on_page = LongTurn(fake_server, chat, "slow two")
    try:
        assert chatdebug.flush()
        _sign_in(browser, server.url)
        row = _row(browser, on_list.run_id)
        assert row.get_attribute("data-status") == "in_progress"
        browser.execute_script("window.__sameDocument = 'yes'")
        browser.save_screenshot(str(tmp_path / "in-progress.png"))
        on_list.finish()
        assert chatdebug.flush()
        selector = f'tr[data-run-id="{on_list.run_id}"]'
        _wait(browser, 20).until(
            lambda d: (
                d.find_element(By.CSS_SELECTOR, selector).get_attribute("data-status")
                == "completed"
            )
        )
        assert browser.find_element(By.CSS_SELECTOR, f"{selector} .pill").text == "completed"
        # A run recorded now appears on top of the list, also without a reload.
        newest = record_simple_turn(fake_server, chat, user_text="a new question")
        assert chatdebug.flush()
        _wait(browser, 20).until(
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#runs-body tr").get_attribute("data-run-id")
                == str(newest)
            )
        )
        assert browser.execute_script("return window.__sameDocument") == "yes"  # no reload

        # The run page of an in-progress run follows it too.
        _row(browser, on_page.run_id).find_element(By.CSS_SELECTOR, "a.run-link").click()
        status = _wait(browser).until(ec.presence_of_element_located((By.ID, "run-status")))
        assert status.text == "in progress"
        assert browser.find_element(By.ID, "live").is_displayed()
        on_page.finish()
        assert chatdebug.flush()
        _wait(browser, 20).until(lambda d: d.find_element(By.ID, "run-status").text == "completed")
        assert browser.execute_script("return window.__sameDocument") == "yes"
        assert not browser.find_element(By.ID, "live").is_displayed()
    finally:
        on_list.finish()
        on_page.finish()


def test_captured_html_is_shown_as_text_and_runs_nothing(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.enqueue(wire.openai_reply(XSS_REPLY))
    with client_for(fake_server) as client, chatdebug.run(XSS_CHAT, first_message=XSS_USER) as run:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": XSS_USER}]
        )
    assert chatdebug.flush() and run.id is not None

    _sign_in(browser, server.url)
    row = _row(browser, run.id)
    assert XSS_CHAT in row.text and XSS_USER in row.text
    row.find_element(By.CSS_SELECTOR, "a.run-link").click()
    step = _wait(browser).until(ec.presence_of_element_located((By.ID, "step-1")))
    user = step.find_element(By.CSS_SELECTOR, ".msg.role-user .text-body")
    reply = step.find_element(By.CSS_SELECTOR, ".msg.reply .text-body")
    assert user.text == XSS_USER.strip()
    assert reply.text == XSS_REPLY
    assert XSS_REPLY in _open(browser, step, ".response-body")
    browser.save_screenshot(str(tmp_path / "xss-run.png"))
    _no_alert(browser)
    assert browser.execute_script("return window.__pwned") is None
    _no_script_errors(browser)
    # Nothing captured became an element: no <img>, no extra <script>, no <b>.
    counts = browser.execute_script(
        "return [document.querySelectorAll('main img').length,"
        " document.scripts.length, document.querySelectorAll('main b').length]"
    )
    assert counts == [0, 1, 0]


def test_usage_not_reported_reads_as_such(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer
) -> None:
    """A step whose provider sent no usage reads "not reported" (with the reason) in the
    list and on the run page, never as 0 tokens."""
    chat = f"usage-{uuid.uuid4().hex[:6]}"
    run_id = record_stream_without_usage(fake_server, chat)
    reported = record_simple_turn(fake_server, chat)
    assert chatdebug.flush()

    _sign_in(browser, server.url)
    assert "12 / 5" in _row(browser, reported).text
    row = _row(browser, run_id)
    assert "not reported" in row.text and "0 / 0" not in row.text
    row.find_element(By.CSS_SELECTOR, "a.run-link").click()
    step = _wait(browser).until(ec.presence_of_element_located((By.ID, "step-1")))
    assert step.find_element(By.CSS_SELECTOR, ".tokens-unreported").text == "tokens not reported"
    usage = step.find_element(By.CSS_SELECTOR, ".usage-unavailable").text
    assert "not reported" in usage and "stream without include_usage" in usage
    facts = browser.find_element(By.ID, "run-head").text
    assert "not reported" in facts and "0 / 0" not in facts
    _no_script_errors(browser)


def test_cost_is_shown_and_unknown_cost_is_not_zero(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer
) -> None:
    """A priced run shows its dollars on the run page and on its step; a step without
    usage says its cost is not available, never $0."""
    chat = f"cost-{uuid.uuid4().hex[:6]}"
    unpriced = record_stream_without_usage(fake_server, chat)
    priced = record_simple_turn(fake_server, chat)
    assert chatdebug.flush()

    _sign_in(browser, server.url)
    _row(browser, priced).find_element(By.CSS_SELECTOR, "a.run-link").click()
    step = _wait(browser).until(ec.presence_of_element_located((By.ID, "step-1")))
    assert step.find_element(By.CSS_SELECTOR, ".step-cost").text.startswith("$0.0000")
    facts = browser.find_element(By.ID, "run-head").text
    assert "cost" in facts and "$0.0000" in facts

    browser.back()
    _row(browser, unpriced).find_element(By.CSS_SELECTOR, "a.run-link").click()
    _wait(browser).until(ec.text_to_be_present_in_element((By.ID, "run-head"), str(unpriced)))
    step = _wait(browser).until(ec.presence_of_element_located((By.ID, "step-1")))
    cost = step.find_element(By.CSS_SELECTOR, ".step-cost").text
    assert cost == "cost not available (usage unknown)"
    facts = browser.find_element(By.ID, "run-head").text
    assert "not available" in facts and "$0.000000" not in facts
    _no_script_errors(browser)


def _record_mixed_turn(fake_server: FakeServer, chat: str) -> uuid.UUID:
    """One priced step and one whose provider sent no usage (so it has no price)."""
    fake_server.enqueue(
        wire.openai_stream_reply(["Hel", "lo"], usage=False), wire.openai_reply("Hello!")
    )
    messages: Any = [{"role": "user", "content": "hi"}]
    with client_for(fake_server) as client, chatdebug.run(chat, first_message="hi") as run:
        for chunk in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
            assert chunk is not None
        client.chat.completions.create(model="gpt-4o", messages=messages)
    assert run.id is not None
    return run.id


def _cost_cell(driver: webdriver.Chrome, run_id: uuid.UUID) -> Any:
    return _row(driver, run_id).find_element(By.CSS_SELECTOR, "td.cost")


def _loaded_order(driver: webdriver.Chrome, wanted: set[str]) -> list[str]:
    ids = [
        r.get_attribute("data-run-id") for r in driver.find_elements(By.CSS_SELECTOR, ".run-row")
    ]
    return [i for i in ids if i in wanted]


def test_runs_list_cost_column(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer, tmp_path: Path
) -> None:
    """The list's Cost column: dollars for a priced run, "not priced" (never $0) for a
    run none of whose steps has a price, a marker beside a total that leaves steps out,
    and sorting the loaded runs by cost with unknown costs last."""
    chat = f"list-cost-{uuid.uuid4().hex[:6]}"
    fake_server.enqueue(wire.openai_reply("long", prompt_tokens=100_000, completion_tokens=1_000))
    with client_for(fake_server) as client, chatdebug.run(chat, first_message="long") as run:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert run.id is not None
    expensive = run.id  # the oldest: sorting by cost moves it
    unpriced = record_stream_without_usage(fake_server, chat)
    mixed = _record_mixed_turn(fake_server, chat)
    priced = record_simple_turn(fake_server, chat)  # gpt-4o, 12 in / 5 out
    assert chatdebug.flush()

    _sign_in(browser, server.url)
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#runs-table thead th")]
    assert "Cost" in headers
    # gpt-4o: $2.50 / $10 per million tokens in / out.
    assert _cost_cell(browser, priced).text == "$0.000080"
    assert _cost_cell(browser, expensive).text == "$0.2600"
    none = _cost_cell(browser, unpriced)
    assert none.text == "not priced" and "$" not in none.text
    assert none.get_attribute("title") == "1 step without a price"
    cell = _cost_cell(browser, mixed)
    assert cell.text.startswith("$0.000080")
    mark = cell.find_element(By.CSS_SELECTOR, ".unpriced-mark")
    assert mark.text == "+1 unpriced"
    assert "lower bound" in (mark.get_attribute("title") or "")
    assert not _row(browser, priced).find_elements(By.CSS_SELECTOR, ".unpriced-mark")

    wanted = {str(i) for i in (unpriced, mixed, priced, expensive)}
    newest_first = [str(i) for i in (priced, mixed, unpriced, expensive)]
    assert _loaded_order(browser, wanted) == newest_first
    sort = browser.find_element(By.ID, "sort-cost")
    header = browser.find_element(By.XPATH, "//th[button[@id='sort-cost']]")
    sort.click()
    assert header.get_attribute("aria-sort") == "descending"
    browser.save_screenshot(str(tmp_path / "runs-by-cost.png"))
    # Ties (the same $0.000080) stay newest first; no cost goes last.
    assert _loaded_order(browser, wanted) == [str(i) for i in (expensive, priced, mixed, unpriced)]
    sort.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert _loaded_order(browser, wanted) == [str(i) for i in (priced, mixed, expensive, unpriced)]
    sort.click()
    assert header.get_attribute("aria-sort") == "none"
    assert _loaded_order(browser, wanted) == newest_first
    _no_script_errors(browser)
