"""Any OpenTelemetry backend: the README's recipe (an ``OTLPSpanExporter`` on the
application's ``TracerProvider``, given to ``configure``) against a loopback OTLP/HTTP
receiver that decodes the protobuf payloads, after real openai SDK calls in a run."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.metrics import Metrics
from tests.fakes import wire
from tests.fakes.server import FakeServer


class OTLPReceiver:
    """A minimal OTLP/HTTP trace receiver: ``POST /v1/traces`` with a protobuf
    ``ExportTraceServiceRequest`` (optionally gzip/deflate encoded)."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.encodings: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                outer.encodings.append(encoding)
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != "/v1/traces":
                    self._reply(404, b"")
                    return
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                with outer._lock:
                    outer.requests.append(message)
                    outer.content_types.append(self.headers.get("Content-Type") or "")
                self._reply(200, ExportTraceServiceResponse().SerializeToString())

            def _reply(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one of them.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1/traces"

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, flattened: name, ids, parent, attributes, resource."""
        out = []
        with self._lock:
            requests = list(self.requests)
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            {
                                "name": span.name,
                                "scope": scope_spans.scope.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "attributes": _attributes(span.attributes),
                                "resource": resource,
                            }
                        )
        return out

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    server = OTLPReceiver()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_runs_and_steps_reach_an_otlp_backend(
    receiver: OTLPReceiver, fake_server: FakeServer, sqlite_url: str, compression: Compression
) -> None:
    # The recipe of the README: the application's provider exports over OTLP/HTTP, and
    # chatdebug adds its own processor to the same provider.
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-app"}))
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint, compression=compression)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    config = chatdebug.configure(
        sqlite_url, enabled=True, tracer_provider=provider, metrics=Metrics(CollectorRegistry())
    )
    fake_server.enqueue(
        wire.openai_reply("Why did the chicken...", prompt_tokens=12, completion_tokens=5),
        wire.openai_stream_reply(["To get", " to the", " other side"]),
    )
    client = openai.OpenAI(
        base_url=fake_server.url + "/v1",
        api_key="sk-proj-otlpTESTkey0123456789abcdef",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    messages: Any = [{"role": "user", "content": "Tell me a joke"}]
    try:
        with client, chatdebug.run("c-otlp", user_id="u-1", first_message="a joke") as run:
            client.chat.completions.create(model="gpt-4o", messages=messages)
            stream = client.chat.completions.create(
                model="gpt-4o",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "To get to the other side"
        assert chatdebug.flush()
        assert provider.force_flush(10_000)
        stored_steps = config.store.list_steps(run.id) if run.id else []
        stored_run = config.store.get_run(run.id) if run.id else None
    finally:
        chatdebug.shutdown()
        provider.shutdown()

    assert receiver.content_types and set(receiver.content_types) == {"application/x-protobuf"}
    assert set(receiver.encodings) == {"gzip" if compression is Compression.Gzip else ""}
    spans = receiver.spans()
    (run_span,) = [s for s in spans if s["name"] == "chat_debug.run"]
    steps = sorted(
        (s for s in spans if s["name"] == "chat_debug.step"),
        key=lambda s: s["attributes"]["chat_debug.step.number"],
    )
    assert len(steps) == 2

    # The run span: ours, with the conversation id, under the application's resource.
    assert run_span["scope"] == "chatdebug"
    assert run_span["resource"]["service.name"] == "chat-app"
    assert run_span["attributes"]["chat_debug.run.id"] == str(run.id)
    assert run_span["attributes"]["gen_ai.conversation.id"] == "c-otlp"
    assert run_span["attributes"]["chat_debug.run.status"] == "completed"
    assert run_span["parent_span_id"] == ""

    # Steps: children of the run in the same trace, with the GenAI conventions.
    for step in steps:
        assert step["trace_id"] == run_span["trace_id"]
        assert step["parent_span_id"] == run_span["span_id"]
        attributes = step["attributes"]
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == "gpt-4o"
        assert attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
        assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert attributes["gen_ai.conversation.id"] == "c-otlp"
        assert attributes["chat_debug.run.id"] == str(run.id)
    generate, streamed = steps
    assert generate["attributes"]["gen_ai.request.stream"] is False
    assert generate["attributes"]["gen_ai.usage.input_tokens"] == 12
    assert generate["attributes"]["gen_ai.usage.output_tokens"] == 5
    assert streamed["attributes"]["gen_ai.request.stream"] is True
    assert streamed["attributes"]["chat_debug.step.operation"] == "stream"
    assert streamed["attributes"]["gen_ai.usage.input_tokens"] == 9
    assert streamed["attributes"]["gen_ai.usage.output_tokens"] == 3

    # The rows in the store point at the very spans the backend received.
    assert stored_run is not None
    assert (stored_run.trace_id, stored_run.span_id) == (run_span["trace_id"], run_span["span_id"])
    assert [(s.trace_id, s.span_id) for s in stored_steps] == [
        (s["trace_id"], s["span_id"]) for s in steps
    ]
    # Secrets were redacted before any exporter saw the spans.
    assert "otlpTESTkey" not in repr(spans)
