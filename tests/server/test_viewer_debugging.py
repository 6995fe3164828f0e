"""The viewer as a debugger, in a real headless Chromium against a real ``chatdebug
serve``: text search and the chat filter, the chat page, errors at the top and in the
list, what is new in each step, the copy buttons and the run export, the keyboard,
dark mode, an 800-pixel window, odd chat ids, a refused filter, an empty database.
Screenshots are kept in the test's ``tmp_path``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from prometheus_client import CollectorRegistry
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import Store
from tests.fakes.server import FakeServer
from tests.server._api_support import (
    API_KEY,
    READ_TOKEN,
    ServeProcess,
    record_error_turn,
    record_simple_turn,
    record_tool_turn,
)
from tests.server._browser import chromium_options, start_chromium

pytestmark = pytest.mark.slow

TRACE_URL = "http://localhost:16686/trace/{trace_id}"
ODD_CHAT_IDS = ["tab\there", "nb\u00a0space 👩‍👩‍👧", "..", ".", "a/b?c#d", "%2e%2e"]


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    config = chatdebug.configure(sqlite_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        yield config.store
    finally:
        chatdebug.shutdown()


@pytest.fixture
def server(store: Store, sqlite_url: str) -> Iterator[ServeProcess]:
    served = ServeProcess(sqlite_url, "--trace-url", TRACE_URL)
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(tmp_path: Path, downloads: Path) -> Iterator[webdriver.Chrome]:
    options = chromium_options(tmp_path / "chromium-profile")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = start_chromium(options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: webdriver.Chrome, timeout: float = 15.0) -> WebDriverWait[Any]:
    # A hash change redraws the page: an element found a moment ago may be gone.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


def _sign_in(driver: webdriver.Chrome, url: str, hash_route: str = "/") -> None:
    driver.get(url + "/")
    field = _wait(driver).until(ec.visibility_of_element_located((By.ID, "token")))
    field.send_keys(READ_TOKEN)
    driver.find_element(By.ID, "login-button").click()
    _wait(driver).until(ec.presence_of_element_located((By.ID, "filters")))
    if hash_route != "/":
        driver.get(f"{url}/#{hash_route}")


def _run_ids(driver: webdriver.Chrome, css: str = "#runs-body tr") -> list[str]:
    return [
        r.get_attribute("data-run-id") or "" for r in driver.find_elements(By.CSS_SELECTOR, css)
    ]


def _no_script_errors(driver: webdriver.Chrome) -> None:
    severe = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
        and "401 (Unauthorized)" not in entry["message"]
        and "400 (Bad Request)" not in entry["message"]
    ]
    assert severe == []


def _grant_clipboard(driver: webdriver.Chrome, origin: str) -> None:
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )


def _clipboard(driver: webdriver.Chrome) -> str:
    text = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, (e) => done('ERROR ' + e));"
    )
    assert isinstance(text, str) and not text.startswith("ERROR "), text
    return text


def _copy(driver: webdriver.Chrome, step: Any, which: str) -> str:
    driver.execute_script("window.focus()")
    step.find_element(By.CSS_SELECTOR, f'button[data-copy="{which}"]').click()
    _wait(driver).until(
        lambda d: "copied" in step.find_element(By.CSS_SELECTOR, ".copy-status").text
    )
    return _clipboard(driver)


def test_search_filter_chat_page_and_odd_chat_ids(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    weather = record_tool_turn(fake_server, f"w-{tag}", user_id="u-weather")
    other = record_error_turn(fake_server, f"w-{tag}")
    hello = record_simple_turn(fake_server, f"h-{tag}", text="Bonjour", user_text="salut")
    odd = {chat_id: record_simple_turn(fake_server, chat_id) for chat_id in ODD_CHAT_IDS}
    assert chatdebug.flush()

    _sign_in(browser, server.url)
    search = browser.find_element(By.ID, "filter-q")
    search.send_keys("jacket", Keys.ENTER)  # words of a streamed reply
    _wait(browser).until(lambda d: _run_ids(d) == [str(weather)])
    assert "q=jacket" in browser.current_url
    assert browser.find_element(By.ID, "filter-q").get_attribute("value") == "jacket"
    browser.save_screenshot(str(tmp_path / "search.png"))

    # Search and the chat filter combine with the other filters.
    browser.get(f"{server.url}/#/?" + urlencode({"chat_id": f"w-{tag}"}))
    _wait(browser).until(lambda d: _run_ids(d) == [str(other), str(weather)])
    browser.get(f"{server.url}/#/?" + urlencode({"q": "bonjour", "chat_id": f"w-{tag}"}))
    _wait(browser).until(lambda d: d.find_element(By.ID, "runs-empty").is_displayed())
    browser.get(f"{server.url}/#/?q=bonjour")
    _wait(browser).until(lambda d: _run_ids(d) == [str(hello)])

    # The chat page: every run of the chat, newest first, with its totals.
    browser.get(f"{server.url}/#/")
    row = _wait(browser).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{weather}"]')
    )
    assert "u-weather" in row.text
    row.find_element(By.CSS_SELECTOR, "a.chat-link").click()
    head = _wait(browser).until(ec.presence_of_element_located((By.ID, "chat-head")))
    assert f"w-{tag}" in head.text
    assert _run_ids(browser, "#chat-runs-body tr") == [str(other), str(weather)]
    totals = browser.find_element(By.CSS_SELECTOR, ".chat-totals").text
    assert "runs 2" in totals.replace("\n", " ") and "failed runs 1" in totals.replace("\n", " ")
    assert "u-weather" in totals
    assert "null" not in browser.find_element(By.ID, "main").text
    browser.save_screenshot(str(tmp_path / "chat-page.png"))

    # Every odd chat id opens: from the list to its chat page and to its run.
    for chat_id, run_id in odd.items():
        browser.get(f"{server.url}/#/?" + urlencode({"chat_id": chat_id}))
        row = _wait(browser).until(
            lambda d, r=run_id: d.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{r}"]')
        )
        row.find_element(By.CSS_SELECTOR, "a.chat-link").click()
        chat = _wait(browser).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#chat-head .chat-id")
        )
        assert chat.get_attribute("textContent") == chat_id
        assert _run_ids(browser, "#chat-runs-body tr") == [str(run_id)]
        browser.find_element(By.CSS_SELECTOR, "#chat-runs-body a.run-link").click()
        facts = _wait(browser).until(ec.presence_of_element_located((By.ID, "run-head")))
        assert str(run_id) in facts.text
        if chat_id == "nb\u00a0space 👩‍👩‍👧":
            browser.save_screenshot(str(tmp_path / "odd-chat-id.png"))
    _no_script_errors(browser)


def test_errors_are_at_the_top_and_in_the_list(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer, tmp_path: Path
) -> None:
    chat = f"err-{uuid.uuid4().hex[:6]}"
    in_step = record_error_turn(fake_server, chat)
    with pytest.raises(KeyError):
        with chatdebug.run(chat, user_id="u-3", first_message="outside a model call") as run:
            raise KeyError("no tool named lookup_order")
    outside = run.id
    assert chatdebug.flush() and outside is not None

    _sign_in(browser, server.url, "/?" + urlencode({"chat_id": chat}))
    _wait(browser).until(lambda d: _run_ids(d) == [str(outside), str(in_step)])
    cells = browser.find_elements(By.CSS_SELECTOR, "#runs-body td.error-cell")
    assert cells[0].text.startswith("KeyError: 'no tool named lookup_order'")
    assert "The server had an error" in (cells[1].get_attribute("title") or "")
    browser.save_screenshot(str(tmp_path / "error-column.png"))

    browser.get(f"{server.url}/#/runs/{in_step}")
    banner = _wait(browser).until(ec.presence_of_element_located((By.ID, "failure")))
    first = browser.find_element(By.CSS_SELECTOR, "#main > *")
    assert first.get_attribute("id") == "failure"  # above everything else
    assert "The server had an error" in banner.text and "HTTP 500" in banner.text
    banner.find_element(By.CSS_SELECTOR, "a.failing-step-link").click()
    _wait(browser).until(
        lambda d: "current-step" in (d.find_element(By.ID, "step-1").get_attribute("class") or "")
    )
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(tmp_path / "error-at-top.png"))

    browser.get(f"{server.url}/#/runs/{outside}")
    # Same document, new hash: wait for this run's banner to replace the other.
    _wait(browser).until(lambda d: str(outside) in d.find_element(By.ID, "run-head").text)
    banner = browser.find_element(By.CSS_SELECTOR, "#failure .failure-message")
    assert banner.text == "'no tool named lookup_order'"
    failure = browser.find_element(By.ID, "failure").text
    assert "outside any model call" in failure and "KeyError" in failure
    assert "u-3" in browser.find_element(By.ID, "run-head").text
    assert "[object Object]" not in browser.page_source
    _no_script_errors(browser)


def test_step_diff_labels_copy_buttons_export_and_links(
    browser: webdriver.Chrome,
    server: ServeProcess,
    fake_server: FakeServer,
    tmp_path: Path,
    downloads: Path,
) -> None:
    run_id = record_tool_turn(fake_server, f"diff-{uuid.uuid4().hex[:6]}")
    assert chatdebug.flush()
    _sign_in(browser, server.url, f"/runs/{run_id}")
    _wait(browser).until(ec.presence_of_element_located((By.ID, "step-3")))

    # The timeline names each step's tool calls or finish reason.
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".wf-step .wf-outcome")]
    assert labels[0] == "→ get_weather"
    assert labels[1] == "stop" and labels[2] == "stop"

    # Step 1 shows its whole request; step 2 only what is new since step 1.
    step1 = browser.find_element(By.ID, "step-1")
    assert len(step1.find_elements(By.CSS_SELECTOR, ".msg:not(.reply)")) == 2
    step2 = browser.find_element(By.ID, "step-2")
    note = step2.find_element(By.CSS_SELECTOR, ".delta-note").text
    assert "2 NEW MESSAGES" in note and "2 earlier messages as in step 1, not shown" in note
    shown = [e.text for e in step2.find_elements(By.CSS_SELECTOR, ".msg:not(.reply) .msg-role")]
    assert [r.split()[0] for r in shown] == ["ASSISTANT", "TOOL"]
    assert "You are a weather bot." not in step2.text
    browser.execute_script("arguments[0].scrollIntoView()", step2)
    browser.save_screenshot(str(tmp_path / "step-diff.png"))
    step2.find_element(By.CSS_SELECTOR, "button.show-full").click()
    _wait(browser).until(lambda d: "You are a weather bot." in step2.text)
    assert len(step2.find_elements(By.CSS_SELECTOR, ".msg:not(.reply)")) == 4
    browser.save_screenshot(str(tmp_path / "step-full-request.png"))

    # Copy the request as JSON and as curl (keys as placeholders), the reply, a link.
    _grant_clipboard(browser, server.url)
    request = json.loads(_copy(browser, step2, "request"))
    assert request["model"] == "gpt-4o" and request["messages"][-1]["role"] == "tool"
    curl = _copy(browser, step2, "curl")
    assert curl.startswith("curl -sS -X POST '" + fake_server.url + "/v1/chat/completions'")
    assert '-H "authorization: Bearer $OPENAI_API_KEY"' in curl
    assert "--data-binary @- <<'CHATDEBUG_BODY'\n{" in curl and curl.endswith("\nCHATDEBUG_BODY")
    assert API_KEY not in curl and "[REDACTED]" not in curl
    assert _copy(browser, step2, "reply") == "Sunny, 18°C"
    link = _copy(browser, step2, "link")
    assert link == f"{server.url}/#/runs/{run_id}/step-2"
    browser.save_screenshot(str(tmp_path / "copy-buttons.png"))

    # The link opens the run at that step.
    browser.get("about:blank")
    browser.get(link)
    _wait(browser).until(
        lambda d: "current-step" in (d.find_element(By.ID, "step-2").get_attribute("class") or "")
    )
    assert browser.execute_script("return window.scrollY") > 0

    # Export one run as a JSON file.
    browser.execute_script("window.scrollTo(0, 0)")
    browser.find_element(By.ID, "export-run").click()
    target = downloads / f"chatdebug-run-{run_id}.json"
    deadline = time.monotonic() + 15
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    exported = json.loads(target.read_text())
    assert exported["id"] == str(run_id) and len(exported["steps"]) == 3

    # The run's trace id, linked to the tracing backend given to serve --trace-url.
    trace = browser.find_element(By.ID, "trace-link")
    assert trace.get_attribute("href") == TRACE_URL.replace("{trace_id}", exported["trace_id"])
    _no_script_errors(browser)


def test_keyboard_dark_mode_and_an_800_pixel_window(
    browser: webdriver.Chrome, server: ServeProcess, fake_server: FakeServer, tmp_path: Path
) -> None:
    run_id = record_tool_turn(fake_server, f"keys-{uuid.uuid4().hex[:6]}")
    assert chatdebug.flush()
    _sign_in(browser, server.url)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "filter-q"
    browser.switch_to.active_element.send_keys("weather", Keys.ENTER)
    _wait(browser).until(lambda d: str(run_id) in _run_ids(d))

    browser.get(f"{server.url}/#/runs/{run_id}")
    _wait(browser).until(ec.presence_of_element_located((By.ID, "step-3")))

    def active() -> str:
        return browser.switch_to.active_element.get_attribute("id") or ""

    browser.find_element(By.TAG_NAME, "body").send_keys("j")
    _wait(browser).until(lambda d: active() == "step-1")
    browser.switch_to.active_element.send_keys("j")
    _wait(browser).until(lambda d: active() == "step-2")
    browser.switch_to.active_element.send_keys("j")
    _wait(browser).until(lambda d: active() == "step-3")
    browser.switch_to.active_element.send_keys("k")
    _wait(browser).until(lambda d: active() == "step-2")

    # Dark mode follows the system setting.
    light = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    _wait(browser).until(
        lambda d: (
            d.execute_script("return getComputedStyle(document.body).backgroundColor")
            == "rgb(13, 17, 23)"
        )
    )
    assert light == "rgb(246, 247, 249)"
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(tmp_path / "dark-run.png"))
    browser.get(f"{server.url}/#/")
    _wait(browser).until(lambda d: str(run_id) in _run_ids(d))
    browser.save_screenshot(str(tmp_path / "dark-list.png"))

    # 800 pixels wide: nothing wider than the window but the runs table, which scrolls.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    browser.set_window_size(800, 1000)
    _wait(browser).until(lambda d: d.execute_script("return window.innerWidth") <= 800)
    for route in ("/", f"/runs/{run_id}"):
        browser.get(f"{server.url}/#{route}")
        _wait(browser).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#runs-table, #steps"))
        )
        time.sleep(0.3)  # layout settles after the page is drawn
        width = browser.execute_script("return document.documentElement.scrollWidth")
        inner = browser.execute_script("return window.innerWidth")
        assert width <= inner, (route, width, inner)
        name = "narrow-list.png" if route == "/" else "narrow-run.png"
        browser.save_screenshot(str(tmp_path / name))
    _no_script_errors(browser)


def test_a_refused_filter_is_shown_beside_it_and_an_empty_database_says_why(
    browser: webdriver.Chrome, server: ServeProcess, tmp_path: Path
) -> None:
    _sign_in(browser, server.url)
    empty = _wait(browser).until(ec.visibility_of_element_located((By.ID, "runs-empty")))
    assert "No runs are recorded in this database yet." in empty.text
    assert "configure(enabled=True)" in empty.text
    browser.save_screenshot(str(tmp_path / "empty-database.png"))

    search = browser.find_element(By.ID, "filter-q")
    search.send_keys("!!!", Keys.ENTER)
    error = _wait(browser).until(ec.visibility_of_element_located((By.ID, "filter-error")))
    assert "a search needs at least one word" in error.text
    field = browser.find_element(By.ID, "filter-q")
    assert field.get_attribute("value") == "!!!"  # the form keeps what was typed
    assert field.get_attribute("aria-invalid") == "true"
    # The message sits right after the search field's label.
    following = browser.execute_script(
        "return document.getElementById('filter-q').closest('label').nextElementSibling.id"
    )
    assert following == "filter-error"
    browser.save_screenshot(str(tmp_path / "filter-error.png"))
