"""Run and step ids stay unique when the application seeds Python's global PRNG
(``random.seed(42)`` at start-up is common; test frameworks such as Hypothesis reseed it
for every example). Colliding ids would merge runs and lose the later ones' steps."""

from __future__ import annotations

import random
from pathlib import Path

from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.metrics import Metrics
from tests.fakes import wire
from tests.fakes.server import FakeServer

from ._driver import stored_rows


def test_runs_recorded_after_the_same_random_seed_stay_apart(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    fake_server.handler = lambda request: wire.openai_reply("ok")
    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    chatdebug.configure(url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        with chatdebug.httpx_client(base_url=fake_server.url) as client:
            for n in range(3):
                random.seed(42)  # e.g. each worker process, or each test, seeds alike
                with chatdebug.run(f"seeded-{n}"):
                    client.post("/v1/chat/completions", json={"model": "m", "messages": []})
        assert chatdebug.flush(10)
    finally:
        chatdebug.shutdown()
    runs, steps = stored_rows(url, "seeded")
    assert len(runs) == 3, runs
    assert sorted(len(s) for s in steps.values()) == [1, 1, 1], steps
