"""The viewer in real Chromium following a live streamed run: the step appears, its
streamed text grows with its chunk count and a running clock, what the reader opened
stays open, no whole run is fetched again, and a restart of ``serve`` shows
"reconnecting" before the page catches up by itself."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

import chatdebug
from chatdebug.store import StepUpdate, Store
from tests.fakes import wire
from tests.fakes.server import SSE_HEADERS, FakeServer, Reply
from tests.server._api_support import ServeProcess, client_for, record_simple_turn, wait_for
from tests.server.test_viewer_browser import (  # noqa: F401  (fixtures)
    _no_alert,
    _no_script_errors,
    _row,
    _sign_in,
    _wait,
    browser,
    store,
)

pytestmark = pytest.mark.slow


_RECORD_FETCHES = """
window.__fetched = [];
const originalFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  window.__fetched.push(String(input instanceof Request ? input.url : input));
  return originalFetch(input, init);
};
"""


def _full_run_fetches(driver: webdriver.Chrome, run_id: uuid.UUID) -> int:
    fetched = driver.execute_script("return window.__fetched") or []
    return sum(1 for url in fetched if str(url).split("?")[0].endswith(f"/debug/runs/{run_id}"))


def test_viewer_follows_a_streamed_run_live(
    browser: webdriver.Chrome,  # noqa: F811
    store: Store,  # noqa: F811
    sqlite_url: str,
    fake_server: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = f"stream-{uuid.uuid4().hex[:6]}"
    go, hold = threading.Event(), threading.Event()
    fake_server.enqueue(
        Reply(
            chunks=wire.openai_stream_chunks(["Hello", " world", ", this is", " live."]),
            headers=SSE_HEADERS,
            hold=hold,
            hold_after=2,
        )
    )
    started: dict[str, uuid.UUID] = {}
    reply: list[str] = []

    def turn() -> None:
        with client_for(fake_server) as client, chatdebug.run(chat, first_message="stream") as run:
            started["run"] = run.id
            go.wait(30)
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    reply.append(chunk.choices[0].delta.content)

    thread = threading.Thread(target=turn)
    thread.start()
    serve = ServeProcess(sqlite_url)
    try:
        wait_for(lambda: "run" in started)
        run_id = started["run"]
        assert chatdebug.flush()
        browser.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_FETCHES}
        )
        _sign_in(browser, serve.url)
        _row(browser, run_id).find_element(By.CSS_SELECTOR, "a.run-link").click()
        _wait(browser).until(lambda d: d.find_element(By.ID, "run-status").text == "in progress")
        loaded = _full_run_fetches(browser, run_id)
        assert loaded == 1
        # The reader opens the run's summary: it stays open through every update.
        browser.find_element(By.CSS_SELECTOR, "details.summary-json > summary").click()

        go.set()  # the streamed call starts, and holds after its first chunks
        _wait(browser).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#step-1.status-in_progress")
        )
        _wait(browser).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#step-1 .stream-clock").text.startswith(
                "running"
            )
        )
        assert chatdebug.flush()
        step = store.list_steps(run_id)[0]
        assert step.status == "in_progress"

        def progress(text: str, chunks: int) -> None:
            metadata = {
                "stream_progress": {
                    "chunks": chunks, "text_chars": len(text),
                    "time_to_first_chunk_ms": 12.0, "text": text,
                },
            }  # fmt: skip
            store.update_step(StepUpdate(id=step.id, chat_id=chat, metadata=metadata))

        progress("Hello", 2)
        _wait(browser).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#step-1 .stream-text").text == "Hello"
        )
        _wait(browser).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#step-1 .stream-chunks").text == "2 chunks"
        )
        _wait(browser).until(
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#step-1 details.metadata > summary").click()
                or True
            )
        )
        progress("Hello world, this is", 4)
        _wait(browser).until(
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#step-1 .stream-text").text
                == "Hello world, this is"
            )
        )
        _wait(browser).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#step-1 .stream-chunks").text == "4 chunks"
        )
        _wait(browser).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#step-1 details.metadata").get_attribute(
                "open"
            )
        )
        assert browser.find_element(By.CSS_SELECTOR, "details.summary-json").get_attribute("open")
        browser.save_screenshot(str(tmp_path / "stream-in-flight.png"))

        hold.set()  # the rest of the stream: the real end-of-stream update follows
        thread.join(30)
        assert "".join(reply) == "Hello world, this is live."
        assert chatdebug.flush()
        _wait(browser, 20).until(lambda d: d.find_element(By.ID, "run-status").text == "completed")
        _wait(browser).until(
            lambda d: "Hello world, this is live." in d.find_element(By.ID, "step-1").text
        )
        assert not browser.find_elements(By.CSS_SELECTOR, "#step-1 .stream-progress")
        assert browser.find_element(By.CSS_SELECTOR, "details.summary-json").get_attribute("open")
        assert _full_run_fetches(browser, run_id) == loaded  # steps came one by one
        _no_script_errors(browser)

        # serve restarts: the page says "reconnecting", then catches up by itself.
        browser.get(serve.url + "/#/")
        _row(browser, run_id)
        _wait(browser).until(lambda d: d.find_element(By.ID, "live").text == "live")
        port = serve.port
        serve.close()
        _wait(browser, 20).until(lambda d: d.find_element(By.ID, "live").text == "reconnecting")
        assert browser.find_element(By.ID, "live").is_displayed()
        browser.save_screenshot(str(tmp_path / "reconnecting.png"))
        while_down = record_simple_turn(fake_server, chat, user_text="asked while serve was down")
        assert chatdebug.flush()
        monkeypatch.setattr("tests.server._api_support.free_port", lambda: port)
        serve = ServeProcess(sqlite_url)
        _wait(browser, 30).until(lambda d: d.find_element(By.ID, "live").text == "live")
        _row(browser, while_down)
        _no_alert(browser)
    finally:
        go.set()
        hold.set()
        thread.join(30)
        serve.close()
