"""``chatdebug tail``: follow runs and steps as they are recorded, straight from the
database (SQLite or PostgreSQL; no server needed), until Ctrl-C.

It reads the store's change events (:func:`chatdebug.store.open_change_feed`) and,
for each, the rows that changed, and prints one line per run start and end and per
step start and end (model, status, tokens, duration, the first words of the reply),
plus the progress of a stream while it is in flight when the recorder writes it.
``--json`` prints one JSON object per line instead, with ``event`` (``run_started``,
``step_started``, ``step_progress``, ``step_finished``, ``run_finished``; ``deleted``,
``finalized``, ``purged`` and ``reset`` for the rest), ``chat_id``, ``run_id``,
``step_number`` for steps, and ``status``.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from .._status import Status
from ..store import ChangeEvent, Run, Step, Store, StoreError, open_change_feed
from ._core import EXIT_OK, CommandError, arg, command, open_from_args

__all__ = ["Follower"]

_REMEMBERED: Final = 10_000  # runs and steps whose last printed state is kept
_REPLY_WORDS: Final = 12
_IN_PROGRESS: Final = Status.IN_PROGRESS.value


def _reply_text(step: Step) -> str:
    """The first words of the step's reply, or of its streamed text so far."""
    response = step.normalized_response if isinstance(step.normalized_response, dict) else {}
    parts = response.get("content")
    texts = [
        str(part["text"])
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
    if not texts:
        progress = _progress(step)
        texts = [str(progress["text"])] if isinstance(progress.get("text"), str) else []
    words = " ".join(texts).split()
    if len(words) > _REPLY_WORDS:
        return " ".join(words[:_REPLY_WORDS]) + " …"
    return " ".join(words)


def _progress(step: Step) -> dict[str, Any]:
    metadata = step.metadata if isinstance(step.metadata, dict) else {}
    progress = metadata.get("stream_progress")
    return progress if isinstance(progress, dict) else {}


def _ms(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else int((end - start).total_seconds() * 1000)


class Follower:
    """Turns change events into lines on ``out``: what changed since it last looked
    at each run and step. ``chat``, ``user`` and ``status`` filter the lines."""

    def __init__(
        self,
        store: Store,
        out: TextIO,
        *,
        as_json: bool = False,
        chat: str | None = None,
        user: str | None = None,
        status: str | None = None,
    ) -> None:
        self._store = store
        self._out = out
        self._json = as_json
        self._chat = chat
        self._user = user
        self._status = status
        self._runs: OrderedDict[uuid.UUID, str] = OrderedDict()
        self._steps: OrderedDict[tuple[uuid.UUID, int], tuple[str, int | None]] = OrderedDict()

    def apply(self, event: ChangeEvent) -> None:
        """Print what ``event`` changed."""
        if event.kind == "run_update":
            if event.run_id is None:
                return
            if self._chat is not None and event.chat_id != self._chat:
                return
            if self._user is not None and event.user_id != self._user:
                return
            self._run_changed(event.run_id, event.step_numbers)
            return
        if event.kind == "delete" and self._chat not in (None, event.chat_id):
            return
        names = {"delete": "deleted", "finalize": "finalized", "purge": "purged", "reset": "reset"}
        doc = {k: v for k, v in event.document().items() if k != "kind"}
        self._emit({"event": names[event.kind], **doc}, _describe(event))

    def _run_changed(self, run_id: uuid.UUID, numbers: tuple[int, ...] | None) -> None:
        run = self._store.get_run(run_id)
        if run is None:
            return
        if run_id not in self._runs:
            self._remember(self._runs, run_id, _IN_PROGRESS)
            self._emit_run("run_started", run, _IN_PROGRESS)
        if numbers is None:
            steps: list[Step] = self._store.list_steps(run_id)
        else:
            steps = [s for s in (self._store.get_step(run_id, n) for n in numbers) if s]
        for step in steps:
            self._step_changed(run, step)
        if run.status != _IN_PROGRESS and self._runs.get(run_id) == _IN_PROGRESS:
            self._remember(self._runs, run_id, run.status)
            self._emit_run("run_finished", run, run.status)

    def _step_changed(self, run: Run, step: Step) -> None:
        key = (run.id, step.step_number)
        before = self._steps.get(key)
        chunks = _progress(step).get("chunks")
        chunks = chunks if isinstance(chunks, int) else None
        if before is None:
            self._emit_step("step_started", run, step, _IN_PROGRESS)
        if step.status == _IN_PROGRESS:
            if chunks is not None and (before is None or before[1] != chunks):
                self._emit_step("step_progress", run, step, _IN_PROGRESS)
            self._remember(self._steps, key, (_IN_PROGRESS, chunks))
        elif before is None or before[0] == _IN_PROGRESS:
            self._emit_step("step_finished", run, step, step.status)
            self._remember(self._steps, key, (step.status, chunks))

    def _remember(self, seen: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        seen[key] = value
        seen.move_to_end(key)
        while len(seen) > _REMEMBERED:
            seen.popitem(last=False)

    def _emit_run(self, name: str, run: Run, status: str) -> None:
        summary = run.summary if isinstance(run.summary, dict) else {}
        doc: dict[str, Any] = {
            "event": name,
            "chat_id": run.chat_id,
            "run_id": str(run.id),
            "status": status,
            "kind": run.kind,
            "user_id": run.user_id,
            "model": run.model,
        }
        if name == "run_finished":
            doc["duration_ms"] = _ms(run.started_at, run.finished_at)
            doc["step_count"] = summary.get("step_count")
            doc["input_tokens"] = summary.get("total_input_tokens")
            doc["output_tokens"] = summary.get("total_output_tokens")
        words = [name.replace("_", " "), status, f"chat {run.chat_id}", f"run {str(run.id)[:8]}"]
        if name == "run_started":
            words.append(run.kind)
        else:
            words += [_duration(doc["duration_ms"]), f"{doc['step_count'] or 0} steps"]
        self._emit(doc, "  ".join(words))

    def _emit_step(self, name: str, run: Run, step: Step, status: str) -> None:
        usage = step.usage if isinstance(step.usage, dict) else {}
        progress = _progress(step)
        doc: dict[str, Any] = {
            "event": name,
            "chat_id": run.chat_id,
            "run_id": str(run.id),
            "step_number": step.step_number,
            "status": status,
            "operation": step.operation,
            "model": step.model,
        }
        words = [f"step {step.step_number} {name.removeprefix('step_')}", status]
        words += [f"chat {run.chat_id}", f"run {str(run.id)[:8]}", step.model or step.operation]
        if name == "step_progress":
            doc["chunks"] = progress.get("chunks")
            doc["text_chars"] = progress.get("text_chars")
            words.append(f"{progress.get('chunks')} chunks, {progress.get('text_chars')} chars")
        if name == "step_finished":
            doc["duration_ms"] = _ms(step.started_at, step.finished_at)
            doc["input_tokens"] = usage.get("input_tokens")
            doc["output_tokens"] = usage.get("output_tokens")
            words.append(_duration(doc["duration_ms"]))
            if usage:
                words.append(f"{usage.get('input_tokens')} in / {usage.get('output_tokens')} out")
        if name != "step_started":
            doc["reply"] = _reply_text(step)
            if doc["reply"]:
                words.append(json.dumps(doc["reply"], ensure_ascii=False))
        self._emit(doc, "  ".join(words))

    def _emit(self, doc: dict[str, Any], text: str) -> None:
        status = doc.get("status")
        if self._status is not None and status is not None and status != self._status:
            return
        if self._status is not None and status is None:
            return
        now = datetime.now(UTC)
        if self._json:
            line = json.dumps({"at": now.isoformat().replace("+00:00", "Z"), **doc})
        else:
            line = f"{now.astimezone().strftime('%H:%M:%S')}  {text}"
        print(line, file=self._out, flush=True)


def _duration(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}s"


def _describe(event: ChangeEvent) -> str:
    if event.kind == "delete":
        return f"deleted  {len(event.run_ids)} runs of chat {event.chat_id}"
    if event.kind == "reset":
        return "reset  (changes may have been missed while the database was away)"
    counts = ", ".join(f"{v} {k}" for k, v in sorted(event.counts.items()))
    return f"{'finalized stale' if event.kind == 'finalize' else 'purged'}  {counts}"


@command(
    "tail",
    "follow runs and steps as they are recorded, until Ctrl-C",
    arg("--chat", metavar="CHAT_ID", help="only this chat"),
    arg("--user", metavar="USER_ID", help="only runs of this user"),
    arg("--status", choices=[s.value for s in Status], help="only lines with this status"),
    arg("--json", action="store_true", help="one JSON object per line"),
)
def _tail(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        try:
            feed = open_change_feed(store)
        except StoreError as exc:
            raise CommandError(str(exc)) from None
        follower = Follower(
            store,
            sys.stdout,
            as_json=args.json,
            chat=args.chat,
            user=args.user,
            status=args.status,
        )
        try:
            feed.wait(0)  # takes its starting point: everything after this line shows
            print("following runs and steps; Ctrl-C to stop", file=sys.stderr, flush=True)
            while True:
                for event in feed.wait(0.5):
                    try:
                        follower.apply(event)
                    except StoreError as exc:  # a read failed: the next events go on
                        print(f"chatdebug tail: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            feed.close()
    return EXIT_OK
