"""A process whose runs do not record because recording is off says so, once: why (not
forced; ``allow_users`` off; the user not opted in) and what turns it on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.instrument import InstrumentSettings, install
from chatdebug.instrument._notice import reset_not_recorded_warning
from chatdebug.metrics import Metrics

FORCE = "configure(enabled=True) or CHATDEBUG_ENABLED=1"


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("CHATDEBUG_ENABLED", raising=False)
    reset_not_recorded_warning()
    caplog.set_level(logging.WARNING, logger="chatdebug")


@pytest.fixture
def configured(sqlite_url: str) -> Iterator[chatdebug.Configuration]:
    """Configured without forcing: the store's settings decide."""
    config = chatdebug.configure(
        sqlite_url, enablement_cache_seconds=0, metrics=Metrics(CollectorRegistry())
    )
    try:
        yield config
    finally:
        chatdebug.shutdown()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "chatdebug" and r.levelno == logging.WARNING
    ]


def test_without_configure(caplog: pytest.LogCaptureFixture) -> None:
    install(InstrumentSettings())
    with chatdebug.run("c-1", user_id="u-7") as run:
        pass
    assert not run.recording
    assert warnings_of(caplog) == [
        "chatdebug: nothing recorded for chat 'c-1' (user 'u-7'): recording is off because "
        "it is not forced by the deployment and chatdebug.configure() was not called. "
        "To record every run: chatdebug.configure(enabled=True) or CHATDEBUG_ENABLED=1. "
        "(Logged once per process.)"
    ]


def test_allow_users_off_is_logged_exactly_once(
    configured: chatdebug.Configuration, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):
        with chatdebug.run(f"c-{n}", user_id="u-7") as run:
            pass
        assert not run.recording

    async def more() -> None:
        async with chatdebug.run("c-async", user_id="u-8"):
            pass

    asyncio.run(more())
    assert warnings_of(caplog) == [
        "chatdebug: nothing recorded for chat 'c-0' (user 'u-7'): recording is off because "
        "it is not forced by the deployment and the admin setting allow_users is off. "
        f"To record every run: {FORCE}; to let users opt in: "
        "`chatdebug settings allow-users on`, then `chatdebug settings user u-7 on`. "
        "(Logged once per process.)"
    ]


def test_user_not_opted_in(
    configured: chatdebug.Configuration, caplog: pytest.LogCaptureFixture
) -> None:
    configured.store.set_allow_users(True)
    configured.store.set_user_enabled("someone else", True)
    with chatdebug.run("c-1", user_id="Ann O'Neil") as run:
        pass
    assert not run.recording
    assert warnings_of(caplog) == [
        "chatdebug: nothing recorded for chat 'c-1' (user \"Ann O'Neil\"): recording is off "
        'because it is not forced by the deployment and user "Ann O\'Neil" has not opted in '
        "(allow_users is on). To opt this user in: "
        "`chatdebug settings user 'Ann O'\"'\"'Neil' on`; "
        f"to record every run: {FORCE}. (Logged once per process.)"
    ]


def test_run_without_user(
    configured: chatdebug.Configuration, caplog: pytest.LogCaptureFixture
) -> None:
    configured.store.set_allow_users(True)

    @chatdebug.traced_run(kind="title_generation")
    def make_title(chat_id: str) -> str:
        return "title"

    assert make_title("c-9") == "title"
    assert warnings_of(caplog) == [
        "chatdebug: nothing recorded for chat 'c-9': recording is off because it is not "
        "forced by the deployment and the run has no user_id, so no user's opt-in applies. "
        "Pass user_id= to chatdebug.run() and opt that user in with "
        f"`chatdebug settings user USER on`, or record every run: {FORCE}. "
        "(Logged once per process.)"
    ]


def test_recorded_runs_do_not_warn_nor_use_up_the_warning(
    configured: chatdebug.Configuration, caplog: pytest.LogCaptureFixture
) -> None:
    configured.store.set_allow_users(True)
    configured.store.set_user_enabled("u-1", True)
    with chatdebug.run("c-1", user_id="u-1") as recorded_run:
        pass
    assert recorded_run.recording
    assert warnings_of(caplog) == []
    with chatdebug.run("c-2", user_id="u-2") as run:
        pass
    assert not run.recording
    (message,) = warnings_of(caplog)
    assert "user 'u-2' has not opted in" in message
    assert "`chatdebug settings user u-2 on`" in message


def test_forced_by_the_deployment_never_warns(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHATDEBUG_ENABLED", "1")
    chatdebug.configure(sqlite_url, metrics=Metrics(CollectorRegistry()))
    try:
        with chatdebug.run("c-1") as run:
            pass
    finally:
        chatdebug.shutdown()
    assert run.recording
    assert warnings_of(caplog) == []
