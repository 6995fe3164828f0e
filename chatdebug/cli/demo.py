"""``chatdebug demo``: a recorded three-step chat turn, with no network and no API key.

A built-in loopback server speaks the OpenAI Chat Completions format; the real ``openai``
SDK calls it through chatdebug's transport: a tool call, a 429 that the SDK retries, and
a streamed answer. The run lands in the store (the embedded SQLite file by default) and
is printed as ``chatdebug show`` would.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._configure import configure, flush, shutdown
from ..instrument import httpx2_client, run
from ..store import database_location
from ._core import EXIT_OK, CommandError, arg, command
from ._demo_server import MODEL, DemoServer
from ._render import render_run

QUESTION = "What's the weather in Paris right now?"
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@command(
    "demo",
    "record a demo chat turn against a built-in fake LLM server and show it",
    arg(
        "--prices",
        metavar="FILE",
        default=None,
        help="JSON price overrides, dollars per million tokens by model "
        f'(e.g. {{"{MODEL}": {{"input_mtok": 0.15, "output_mtok": 0.6}}}})',
    ),
)
def _demo(args: argparse.Namespace) -> int:
    try:
        import openai
    except ImportError:
        raise CommandError(
            "chatdebug demo needs the openai package: pip install 'chatdebug[demo]'"
        ) from None
    config = configure(args.database_url, enabled=True, prices_file=args.prices)
    server = DemoServer().start()
    try:
        client = openai.OpenAI(
            base_url=server.url,
            api_key="sk-demo-0123456789abcdefghijklmnopqrstuv",
            http_client=httpx2_client(),
            max_retries=2,
        )
        messages: list[Any] = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": QUESTION},
        ]
        with run("demo-chat", user_id="demo-user", first_message=QUESTION) as turn:
            first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
            call = (first.choices[0].message.tool_calls or [])[0]
            weather = {"city": "Paris", "temperature_c": 18, "sky": "sunny"}
            messages.append(first.choices[0].message.model_dump(exclude_none=True))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(weather)}
            )
            second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
            messages.append({"role": "assistant", "content": second.choices[0].message.content})
            messages.append({"role": "user", "content": "What should I wear?"})
            stream = client.chat.completions.create(
                model=MODEL,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            answer = "".join(
                chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
            )
        client.close()
        if not flush(10.0):
            raise CommandError("the demo run could not be written in time")
        assert turn.id is not None
        stored = config.store.get_run(turn.id)
        if stored is None:
            raise CommandError(f"run {turn.id} was not stored")
        steps = config.store.list_steps(turn.id)
        print(f"assistant: {second.choices[0].message.content} {answer}")
        print(f"recorded into {database_location(config.database_url)}")
        print()
        print(render_run(stored, steps))
        print()
        print("next: chatdebug runs --chat demo-chat    chatdebug show", turn.id, "--json")
    finally:
        server.stop()
        shutdown()
    return EXIT_OK
