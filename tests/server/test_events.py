"""The event streams of a real ``chatdebug serve`` while a real application process
records: several clients follow, one resumes with ``Last-Event-ID``; a restart of
``serve`` and an outage of the database lose nothing; a slow subscriber is cut off
alone; tokens and filters apply."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatdebug.store import BulkWrites, NewRun, bulk_writer, open_store
from tests.fakes.tcp_proxy import TCPProxy
from tests.ops.serve_process import ServeProcess
from tests.server._api_support import ADMIN_TOKEN, READ_TOKEN
from tests.server._sse import SSEClient, SSEEvent, covered, raw_stream, read_all, write_runs
from tests.store.support import is_sqlite

pytestmark = pytest.mark.slow

TOKENS = ("--token", READ_TOKEN, "--admin-token", ADMIN_TOKEN, "--no-purge", "--no-finalize")


def _complete(runs: list[uuid.UUID]) -> Any:
    def check(events: list[SSEEvent]) -> bool:
        seen = covered(events)
        return all(seen.get(str(r)) == ({1, 2}, "completed") for r in runs)

    return check


def _get(base: str, path: str, token: str | None = READ_TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(base + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_clients_follow_an_application_and_one_resumes(database_url: str) -> None:
    with ServeProcess(database_url, *TOKENS) as serve:
        clients = [SSEClient(serve.base, "/api/debug/events", READ_TOKEN) for _ in range(3)]
        leaving = clients.pop()
        first = write_runs(database_url, "app", 4)
        leaving.wait_for(_complete(first))
        resume_from = leaving.last_id
        assert resume_from is not None
        leaving.close()
        second = write_runs(database_url, "app", 4)
        back = SSEClient(serve.base, "/api/debug/events", READ_TOKEN, last_event_id=resume_from)
        back.wait_for(_complete(second))
        assert not any(e.kind == "reset" for e in back.snapshot())
        for client in clients:
            client.wait_for(_complete(first + second))
            events = client.snapshot()
            assert all(e.id for e in events)
            assert {e.kind for e in events} == {"run_update"}
            sample = next(e.data for e in events if e.data["step_numbers"])
            assert {"chat_id", "run_id", "status", "step_numbers"} <= set(sample)
            client.close()
        back.close()
        assert serve.stop() == 0


def test_a_serve_restart_loses_nothing(database_url: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    serve = ServeProcess(database_url, *TOKENS)
    client = SSEClient(serve.base, "/api/debug/events", READ_TOKEN)
    first = write_runs(database_url, "restart", 2)
    client.wait_for(_complete(first))
    # SIGTERM with a subscriber connected: its stream ends, serve exits 0.
    assert serve.stop(signal.SIGTERM) == 0
    assert client.ended.wait(10)
    last_id = client.last_id
    client.close()
    while_down = write_runs(database_url, "restart", 2)
    with ServeProcess(database_url, *TOKENS) as again:
        back = SSEClient(again.base, "/api/debug/events", READ_TOKEN, last_event_id=last_id)
        after = write_runs(database_url, "restart", 1)
        if is_sqlite(database_url):
            # The ring outlives serve: the events written while it was down are replayed.
            back.wait_for(_complete(while_down + after))
            assert not any(e.kind == "reset" for e in back.snapshot())
        else:
            # Notifications are not kept: the client is told to re-read, and catches up.
            back.wait_for(lambda ev: ev and ev[0].kind == "reset")
            back.wait_for(_complete(after))
            since = before.isoformat().replace("+00:00", "Z")
            status, body = _get(again.base, f"/api/debug/runs/changed?since={since}")
            assert status == 200
            found = {r["id"]: r["status"] for r in body["runs"]}
            assert all(found.get(str(r)) == "completed" for r in first + while_down + after)
        back.close()
        assert again.stop() == 0


def test_a_database_outage_resets_the_streams_and_they_recover(pg_url: str) -> None:
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    with TCPProxy(host, int(port or 5432)) as proxy:
        proxied = proxy.rewrite_url(pg_url)
        with ServeProcess(proxied, *TOKENS) as serve:
            client = SSEClient(serve.base, "/api/debug/events", READ_TOKEN)
            first = write_runs(pg_url, "outage", 1)
            client.wait_for(_complete(first))
            proxy.stop()
            during = write_runs(pg_url, "outage", 2)  # straight to the database
            proxy.start()
            client.wait_for(lambda ev: any(e.kind == "reset" for e in ev), timeout=60)
            after = write_runs(pg_url, "outage", 2)
            client.wait_for(_complete(after), timeout=60)
            # The reset told the client to re-read: what it would re-read has everything.
            since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
            status, body = _get(serve.base, f"/api/debug/runs/changed?since={since}")
            assert status == 200
            assert {str(r) for r in first + during + after} <= {r["id"] for r in body["runs"]}
            client.close()
            assert serve.stop() == 0


def test_a_slow_subscriber_is_cut_off_alone(database_url: str) -> None:
    chat = "slow-" + "x" * 200  # large events fill the slow client's buffers sooner
    with ServeProcess(database_url, *TOKENS, "--event-queue", "4") as serve:
        fast = SSEClient(serve.base, "/api/debug/events", READ_TOKEN)
        slow = raw_stream(serve.port, "/api/debug/events", READ_TOKEN)
        written: list[uuid.UUID] = []
        with open_store(database_url) as store:
            writer = bulk_writer(store)
            assert writer is not None
            for _ in range(40):  # 40 commits of 500 runs: bursts the slow one cannot take
                runs = [NewRun(chat_id=chat) for _ in range(500)]
                assert writer.write_bulk(BulkWrites(new_runs=runs))
                written += [r.id for r in runs]
                fast.wait_for(lambda ev, last=runs[-1].id: covered(ev).get(str(last)), timeout=60)
        assert set(covered(fast.snapshot())) >= {str(r) for r in written}
        assert not any(e.kind == "reset" for e in fast.snapshot())
        assert not fast.ended.is_set()
        received = read_all(slow)
        slow.close()
        # Its stream ended with a reset (it reconnects and re-reads), not an endless buffer.
        assert b"event: reset" in received[-4000:]
        seen_by_slow = received.count(b"event: run_update")
        assert seen_by_slow < len(written)
        # The others go on.
        more = write_runs(database_url, "after-slow", 1)
        fast.wait_for(_complete(more))
        fast.close()
        assert serve.stop() == 0


def test_event_routes_check_tokens_and_apply_filters(sqlite_url: str) -> None:
    with ServeProcess(sqlite_url, *TOKENS) as serve:
        for token in (None, "wrong-token"):
            denied = SSEClient(serve.base, "/api/debug/events", token)
            assert denied.status == 401
            denied.close()
        for path in (
            "/api/debug/events?bogus=1",
            "/api/debug/events?status=sleeping",
            "/api/chats/app-0/debug/events?user_id=",
        ):
            bad = SSEClient(serve.base, path, READ_TOKEN)
            assert bad.status == 400, path
            bad.close()
        chat = SSEClient(serve.base, "/api/chats/app-1/debug/events", READ_TOKEN)
        user = SSEClient(serve.base, "/api/debug/events?user_id=u-0", READ_TOKEN)
        everything = SSEClient(serve.base, "/api/debug/events", READ_TOKEN)
        runs = write_runs(sqlite_url, "app", 6)
        everything.wait_for(_complete(runs))
        chat.wait_for(lambda ev: len(covered(ev)) == 2)  # runs 1 and 4 are in app-1
        user.wait_for(lambda ev: len(covered(ev)) == 3)  # runs 0, 2 and 4 are u-0's
        with open_store(sqlite_url) as store:
            owners = {r: store.get_run(r) for r in runs}
        assert all(owners[uuid.UUID(rid)].chat_id == "app-1" for rid in covered(chat.snapshot()))  # type: ignore[union-attr]
        assert all(owners[uuid.UUID(rid)].user_id == "u-0" for rid in covered(user.snapshot()))  # type: ignore[union-attr]
        for client in (chat, user, everything):
            client.close()

        # The reads that apply an event: one step, one run without steps, changed runs.
        run = owners[runs[0]]
        assert run is not None
        step_path = f"/api/chats/{run.chat_id}/debug/runs/{run.id}/steps/2"
        assert _get(serve.base, step_path, None)[0] == 401
        status, step = _get(serve.base, step_path)
        assert (status, step["step_number"], step["status"]) == (200, 2, "completed")
        assert _get(serve.base, f"/api/chats/other/debug/runs/{run.id}/steps/2")[0] == 404
        assert _get(serve.base, f"/api/chats/{run.chat_id}/debug/runs/{run.id}/steps/9")[0] == 404
        status, summary = _get(serve.base, f"/api/chats/{run.chat_id}/debug/runs/{run.id}/summary")
        assert (status, summary["id"], summary["status"]) == (200, str(run.id), "completed")
        assert "steps" not in summary
        status, body = _get(serve.base, "/api/debug/runs/changed?since=1h&limit=2")
        assert status == 200 and len(body["runs"]) == 2
        assert [r["id"] for r in body["runs"]] == [str(r) for r in runs[:2]]  # oldest first
        assert _get(serve.base, "/api/debug/runs/changed")[0] == 400
        assert _get(serve.base, "/api/debug/runs/changed?since=1h", None)[0] == 401
        assert serve.stop() == 0
