"""What the search index costs the writer for an agent that sends its whole history with
every call: each step's request indexed whole (``request_history_sent`` unset, as before
it existed) against indexed from the first message its run's previous step had not sent.

Each arm writes the same ``--runs`` runs of ``--steps`` steps through the store's bulk path
(the writer's own path, triggers included; one batch per run) into a fresh database;
step *k* of a run sends the history of step *k − 1* plus the previous answer and a new
question of about ``--chars`` characters each, so the history grows by twice that per
step. The arms
alternate for ``--rounds`` rounds; the figure is CPU per step (this thread's: SQLite runs
on it), the median over rounds, next to the history's length at the last step. Both
backends unless ``--backend``; PostgreSQL runs the triggers in its own process, so there
the figure is the wall time per step. No assertions: it reports::

    .venv/bin/python benchmarks/history_index_bench.py [--backend sqlite] [--steps 40]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatdebug.instrument._state import carried_over
from chatdebug.store import BulkWrites, NewRun, NewStep, bulk_writer, open_store

_WORDS = [
    "".join(random.Random(n).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 + n % 7))
    for n in range(3000)
]


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(_WORDS))
    return " ".join(words)


def _message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "text": text}]}


def _requests(steps: int, chars: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    history = [_message("system", _text(rng, chars)), _message("user", _text(rng, chars))]
    requests = []
    for _ in range(steps):
        requests.append({"messages": list(history), "model": "gpt-4o"})
        history += [_message("assistant", _text(rng, chars)), _message("user", _text(rng, chars))]
    return requests


def _write(url: str, runs: int, steps: int, chars: int, skip: bool) -> float:
    """Seconds per step to write ``runs`` agent runs (see the module docstring)."""
    store = open_store(url)
    writer = bulk_writer(store)
    assert writer is not None
    clock = time.thread_time if url.startswith("sqlite") else time.perf_counter
    spent = 0.0
    try:
        for number in range(runs):
            run = store.create_run(NewRun(chat_id=f"agent-{uuid.uuid4()}"))
            previous: list[Any] | None = None
            batch = []
            for step_number, request in enumerate(_requests(steps, chars, number), start=1):
                messages = request["messages"]
                batch.append(
                    NewStep(
                        run_id=run.id,
                        chat_id=run.chat_id,
                        operation="generate",
                        step_number=step_number,
                        status="completed",
                        normalized_request=request,
                        normalized_response={"content": [{"type": "text", "text": "ok"}]},
                        request_history_sent=carried_over(previous, messages) if skip else None,
                    )
                )
                previous = messages
            # One batch per run, as the writer batches what is queued.
            start = clock()
            with store.batch():
                writer.write_bulk(BulkWrites(new_steps=batch))
            spent += clock() - start
    finally:
        store.close()
    return spent / (runs * steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    history = len(str(_requests(args.steps, args.chars, 0)[-1]["messages"]))
    print(
        f"{args.runs} runs × {args.steps} steps, the history growing by {2 * args.chars} "
        f"characters a step to about {history:,} characters of JSON at the last step"
    )
    for backend in backends:
        figures: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for skip in (False, True):
                if backend == "sqlite":
                    url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "history.db")
                else:
                    url = args.pg_url
                figures[skip].append(_write(url, args.runs, args.steps, args.chars, skip))
        whole, new = (statistics.median(figures[k]) * 1e6 for k in (False, True))
        unit = "CPU" if backend == "sqlite" else "wall time"
        print(
            f"{backend:<10} µs of {unit} per step: request indexed whole {whole:7.0f}, "
            f"from its new messages {new:7.0f} ({new / whole - 1:+.0%})"
        )


if __name__ == "__main__":
    main()
