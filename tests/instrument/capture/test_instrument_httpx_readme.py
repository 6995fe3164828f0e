"""The README's first example, run as written (the SDKs pointed at a loopback server
through their own environment variables), records a run with its two steps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatdebug.store import open_store
from tests.fakes import wire
from tests.fakes.server import FakeServer

pytestmark = pytest.mark.slow  # runs the README example in a child interpreter

ROOT = Path(__file__).resolve().parents[3]


def first_use_example() -> str:
    readme = (ROOT / "README.md").read_text()
    use = readme.split("\n## Use\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", use, re.S)
    assert match is not None, "no python example under ## Use"
    return match.group(1)


def test_readme_first_example_records(fake_server: FakeServer, tmp_path: Path) -> None:
    example = first_use_example()
    assert "enabled=True" in example
    fake_server.enqueue(wire.openai_reply("Hi!"), wire.openai_stream_reply(["Hel", "lo"]))
    script = (
        'text = "Hello there"\n'
        'msgs = [{"role": "user", "content": text}]\n'
        f"{example}\n"
        "assert chatdebug.flush()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATDEBUG_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "OPENAI_BASE_URL": fake_server.url + "/v1",
            "OPENAI_API_KEY": "sk-readme-0123456789abcdef",
            "ANTHROPIC_BASE_URL": fake_server.url,
            "ANTHROPIC_API_KEY": "sk-ant-readme",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "nothing recorded" not in done.stderr
    with open_store(f"sqlite:///{tmp_path / 'chatdebug.db'}") as store:
        (run,) = store.list_runs("c-42")
        steps = store.list_steps(run.id)
    assert run.status == "completed" and run.user_id == "u-7"
    assert [(s.step_number, s.operation, s.status) for s in steps] == [
        (1, "generate", "completed"),
        (2, "stream", "completed"),
    ]
    assert steps[1].assistant_message_id == 18
    assert len(fake_server.requests) == 2
