"""A small instrumented chat application for the dashboard tests, run as a process:

    python -m tests.dashboards._traffic_app DATABASE_URL METRICS_PORT SPILL_PATH

It records through chatdebug into DATABASE_URL (with its spill journal at SPILL_PATH,
where it first finds one run left by an earlier process to replay), serves its metrics on
127.0.0.1:METRICS_PORT with ``chatdebug.start_metrics_server`` and, until terminated,
makes real ``openai`` and ``anthropic`` SDK calls against a loopback fake provider:
answered calls, streams, a rate limit the SDK retries, a provider error, and a call
through a decorated function whose chat id cannot be read (a caller bug chatdebug logs,
counts and survives). Prints ``ready`` once the first round is recorded.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import openai

import chatdebug
from chatdebug.exporter import SpillJournal
from chatdebug.exporter._events import CreateRun, FinishRun
from chatdebug.store import NewRun, RunUpdate
from tests.fakes import wire
from tests.fakes.server import FakeServer, RecordedRequest, Reply

MESSAGES: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


class _Provider:
    """Replies by path: OpenAI chat completions and Anthropic messages, with the errors
    each round asks for."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.plan: list[Reply] = []

    def queue(self, *replies: Reply) -> None:
        with self.lock:
            self.plan.extend(replies)

    def __call__(self, request: RecordedRequest) -> Reply:
        with self.lock:
            if self.plan:
                return self.plan.pop(0)
        if request.path.endswith("/messages"):
            return wire.anthropic_reply("Sunny")
        return wire.openai_reply("Sunny")


class _UnreadableId:
    """A chat id whose text cannot be produced: a bug in the caller's code."""

    def __str__(self) -> str:
        raise ValueError("chat id not loaded yet")


@chatdebug.traced_run()
def _answer_later(chat_id: object) -> str:
    return "answered without recording"


def _round(n: int, provider: _Provider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    rate_limited = wire.openai_error_reply(429, "Rate limit reached", "rate_limit_error")
    rate_limited.headers = {**rate_limited.headers, "retry-after-ms": "5"}
    with chatdebug.run(f"chat-{n % 3}", user_id="u-1", first_message="Weather?"):
        provider.queue(rate_limited)  # retried by the SDK inside the same step
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        provider.queue(wire.openai_stream_reply(["Sun", "ny"], chunk_delay=0.01))
        stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        for _ in stream:
            pass
    with chatdebug.run(f"chat-{n % 3}", kind="title_generation"):
        provider.queue(wire.openai_error_reply(400, "bad request", "invalid_request_error"))
        try:
            oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        except openai.BadRequestError:
            pass
        claude.messages.create(model="claude-opus-4-6", max_tokens=32, messages=MESSAGES)
        provider.queue(wire.anthropic_stream_reply(["Sun", "ny"]))
        with claude.messages.stream(
            model="claude-opus-4-6", max_tokens=32, messages=MESSAGES
        ) as streamed:
            streamed.get_final_text()
    _answer_later(_UnreadableId())


def _leftover_journal(path: str) -> None:
    """The spill journal of an earlier process that ended before writing one run: this
    one replays it (a real number on the replay metrics). The run started two hours ago,
    before the time range the SQL panels are checked over."""
    run_id = uuid.uuid4()
    began = datetime.now(UTC) - timedelta(hours=2)
    events = [
        CreateRun(NewRun(chat_id="chat-replayed", id=run_id, started_at=began)),
        FinishRun(
            RunUpdate(id=run_id, chat_id="chat-replayed", status="completed", finished_at=began),
            seed={"first_message": "left in a journal"},
        ),
    ]
    journal = SpillJournal(path, 1 << 20)
    journal.append([(order, event, time.time()) for order, event in enumerate(events)])
    journal.close()


def main(database_url: str, metrics_port: int, spill_path: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _leftover_journal(spill_path)
    chatdebug.configure(database_url, enabled=True, spill_path=spill_path)
    chatdebug.start_metrics_server(metrics_port)
    provider = _Provider()
    with FakeServer() as server:
        server.handler = provider
        oai = openai.OpenAI(
            base_url=server.url + "/v1",
            api_key="sk-test",
            http_client=chatdebug.httpx2_client(),
            max_retries=2,
        )
        claude = anthropic.Anthropic(
            base_url=server.url,
            api_key="sk-ant-test",
            http_client=chatdebug.httpx2_client(),
            max_retries=0,
        )
        n = 0
        while not stop.is_set():
            _round(n, provider, oai, claude)
            if n == 0:
                chatdebug.flush()
                print("ready", flush=True)
            n += 1
            stop.wait(0.5)
    chatdebug.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
