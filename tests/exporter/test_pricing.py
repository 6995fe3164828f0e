"""Step pricing: genai-prices' own calculation is the oracle for every priced case, and one
figure is checked by hand from the published rates."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import openai
import pytest
from genai_prices import Usage
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug import _spans as attr
from chatdebug._safety import internal_error_counts
from chatdebug.exporter import (
    Pricer,
    PricesError,
    StoreSpanExporter,
    StoreSpanProcessor,
    aggregate_run_summary,
    load_prices_file,
    validate_prices,
)
from chatdebug.exporter._events import UpdateStep
from chatdebug.exporter._pricing import (
    NO_PRICE,
    NO_USAGE,
    UNKNOWN_PROVIDER,
    price_events,
    price_step,
)
from chatdebug.metrics import Metrics
from chatdebug.store import StepUpdate, Store, encode_json
from tests.exporter.support import finished_step_attributes, sample, start_run, start_step
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, FakeServer, Reply

AT = datetime(2025, 9, 1, tzinfo=UTC)
PARTS = ("input_usd", "output_usd", "cache_read_usd", "cache_write_usd")


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return Pricer()


def _oracle(usage: Usage, model: str, provider_id: str) -> float:
    calc = genai_prices.calc_price(
        usage, model_ref=model, provider_id=provider_id, genai_request_timestamp=AT
    )
    return float(calc.total_price)


def _priced(pricer: Pricer, usage: dict[str, int], provider: str, model: str) -> dict[str, Any]:
    result = pricer.price(usage, provider=provider, models=(model,), at=AT)
    assert result.unavailable is None
    assert result.cost is not None
    cost = result.cost
    assert cost["currency"] == "USD"
    assert cost["source"] == "genai-prices"
    assert cost["source_version"] == genai_prices.__version__
    assert sum(Decimal(str(cost[part])) for part in PARTS) == Decimal(str(cost["total_usd"]))
    return cost


def test_openai_chat_with_cached_tokens_by_hand_and_by_oracle(pricer: Pricer) -> None:
    # OpenAI reports cached tokens inside prompt_tokens, as our usage does.
    usage = {"input_tokens": 10_000, "output_tokens": 2_000, "cache_read_tokens": 4_000}
    cost = _priced(pricer, usage, "openai", "gpt-4o-2024-08-06")
    oracle = _oracle(
        Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=4_000), "gpt-4o", "openai"
    )
    assert cost["total_usd"] == pytest.approx(oracle, abs=1e-9)
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens.
    assert cost["input_usd"] == pytest.approx(6_000 * 2.5 / 1e6)
    assert cost["cache_read_usd"] == pytest.approx(4_000 * 1.25 / 1e6)
    assert cost["output_usd"] == pytest.approx(2_000 * 10 / 1e6)
    assert cost["total_usd"] == pytest.approx(0.015 + 0.005 + 0.02)
    assert cost["match"] == "exact"


def test_reasoning_model_counts_reasoning_as_output(pricer: Pricer) -> None:
    usage = {"input_tokens": 1_000, "output_tokens": 5_000, "reasoning_tokens": 4_000}
    cost = _priced(pricer, usage, "openai", "o3-mini")
    oracle = _oracle(
        Usage(input_tokens=1_000, output_tokens=5_000, output_reasoning_tokens=4_000),
        "o3-mini",
        "openai",
    )
    assert cost["total_usd"] == pytest.approx(oracle, abs=1e-9)
    assert cost["output_usd"] > cost["input_usd"]


def test_anthropic_cache_read_and_write(pricer: Pricer) -> None:
    # Anthropic reports cache reads and writes beside input_tokens, genai-prices inside.
    usage = {
        "input_tokens": 1_000,
        "output_tokens": 500,
        "cache_read_tokens": 20_000,
        "cache_creation_tokens": 3_000,
    }
    cost = _priced(pricer, usage, "anthropic", "claude-sonnet-4-5")
    oracle = _oracle(
        Usage(
            input_tokens=24_000,
            output_tokens=500,
            cache_read_tokens=20_000,
            cache_write_tokens=3_000,
        ),
        "claude-sonnet-4-5",
        "anthropic",
    )
    assert cost["total_usd"] == pytest.approx(oracle, abs=1e-9)
    assert cost["cache_read_usd"] > 0
    assert cost["cache_write_usd"] > 0
    assert cost["input_usd"] == pytest.approx(1_000 * 3 / 1e6)  # the uncached part only


def test_gemini_thinking_tokens(pricer: Pricer) -> None:
    # Our Gemini usage puts thoughts inside output_tokens, as Gemini bills them.
    usage = {"input_tokens": 2_000, "output_tokens": 1_500, "reasoning_tokens": 1_200}
    for provider in ("gcp.gemini", "gcp.vertex_ai"):
        cost = _priced(pricer, usage, provider, "gemini-2.5-flash")
        oracle = _oracle(
            Usage(input_tokens=2_000, output_tokens=1_500, output_reasoning_tokens=1_200),
            "gemini-2.5-flash",
            "google",
        )
        assert cost["total_usd"] == pytest.approx(oracle, abs=1e-9)


def test_response_model_first_then_requested(pricer: Pricer) -> None:
    result = pricer.price(
        {"input_tokens": 100, "output_tokens": 10},
        provider="openai",
        models=("my-gateway-alias", "gpt-4o"),
        at=AT,
    )
    assert result.cost is not None
    assert result.cost["match"] == "fallback"


def test_provider_from_the_model_name_is_a_fallback(pricer: Pricer) -> None:
    result = pricer.price(
        {"input_tokens": 100, "output_tokens": 10}, provider="unknown", models=("gpt-4o",), at=AT
    )
    assert result.cost is not None and result.cost["match"] == "fallback"


def test_unknown_model_unknown_provider_unknown_usage(pricer: Pricer) -> None:
    usage = {"input_tokens": 100, "output_tokens": 10}
    assert pricer.price(
        usage, provider="openai", models=("demo-gpt-4o-mini",), at=AT
    ).unavailable == (NO_PRICE)
    assert pricer.price(usage, provider="ollama", models=("llama-local",), at=AT).unavailable == (
        UNKNOWN_PROVIDER
    )
    assert pricer.price(None, provider="openai", models=("gpt-4o",), at=AT).unavailable == NO_USAGE
    assert pricer.price(usage, provider="openai", models=(None,), at=AT).unavailable == NO_PRICE


def test_override_prices_a_model_the_database_does_not_know() -> None:
    pricer = Pricer(
        {"My-Finetune": {"input_mtok": 1.5, "output_mtok": 6.0, "cache_read_mtok": 0.5}}
    )
    result = pricer.price(
        {"input_tokens": 1_000_000, "output_tokens": 100_000, "cache_read_tokens": 200_000},
        provider="openai",
        models=("my-finetune", None),
        at=AT,
    )
    assert result.cost is not None
    assert result.cost["match"] == "override"
    assert result.cost["source"] == "override"
    assert result.cost["input_usd"] == pytest.approx(1.2)
    assert result.cost["cache_read_usd"] == pytest.approx(0.1)
    assert result.cost["output_usd"] == pytest.approx(0.6)
    assert result.cost["total_usd"] == pytest.approx(1.9)


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"m": {"input_mtokens": 1}}, "unknown price key 'input_mtokens'"),
        ({"m": {"input_mtok": -1}}, "non-negative number"),
        ({"m": {"input_mtok": "1.5"}}, "non-negative number"),
        ({"m": {"input_mtok": float("nan")}}, "non-negative number"),
        ({"m": {"input_mtok": True}}, "non-negative number"),
        ({"m": 1.5}, "expected an object of rates"),
        ([1], "expected an object of model name"),
    ],
)
def test_bad_override_is_a_clear_error(prices: object, message: str) -> None:
    with pytest.raises(PricesError, match=message):
        validate_prices(prices)


def test_prices_file(tmp_path: Path) -> None:
    good = tmp_path / "prices.json"
    good.write_text(json.dumps({"m": {"input_mtok": 1, "output_mtok": 2}}))
    assert load_prices_file(good) == {"m": {"input_mtok": 1, "output_mtok": 2}}
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(PricesError, match="invalid JSON"):
        load_prices_file(bad)
    with pytest.raises(PricesError, match=r"missing\.json"):
        load_prices_file(tmp_path / "missing.json")


def _update(usage: object, metadata: object) -> UpdateStep:
    params = StepUpdate(
        id=uuid.uuid4(),
        chat_id="c",
        status="completed",
        usage=usage,  # type: ignore[arg-type]
        metadata=metadata,  # type: ignore[arg-type]
        provider="openai",
        model="gpt-4o",
        finished_at=AT,
    )
    return UpdateStep(params, run_id=uuid.uuid4(), models=("gpt-4o", "gpt-4o"))


def test_price_events_adds_the_cost_to_encoded_metadata(pricer: Pricer) -> None:
    seen: list[tuple[str, str, float]] = []
    event = _update(
        encode_json({"input_tokens": 1000, "output_tokens": 100}),
        encode_json({"stream_summary": {"part_count": 2}}),
    )
    (priced,) = price_events([event], pricer, lambda *a: seen.append(a))
    assert isinstance(priced, UpdateStep)
    metadata = priced.params.metadata
    assert isinstance(metadata, dict)
    assert metadata["stream_summary"] == {"part_count": 2}
    assert metadata["cost"]["total_usd"] == pytest.approx(0.0035)
    assert seen == [("openai", "gpt-4o", metadata["cost"]["total_usd"])]

    (unpriced,) = price_events([_update(None, None)], pricer)
    assert isinstance(unpriced, UpdateStep)
    assert unpriced.params.metadata == {"cost_unavailable": NO_USAGE}


def test_a_pricing_failure_is_counted_and_the_step_kept(
    pricer: Pricer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("price table exploded")

    monkeypatch.setattr(Pricer, "price", broken)
    before = internal_error_counts().get("pricing", 0)
    event = _update({"input_tokens": 1, "output_tokens": 1}, {"a": 1})
    kept = price_step(event, pricer)
    assert kept.params == event.params  # written as it came, without a cost
    assert kept.priced  # and not tried again when written from the spill journal
    assert internal_error_counts().get("pricing", 0) == before + 1


def _run_two_steps(
    store: Store, provider: TracerProvider, pricer: Pricer | None, *, end_only: bool = False
) -> uuid.UUID:
    processor: SpanProcessor
    if end_only:
        processor = SimpleSpanProcessor(StoreSpanExporter(store, pricer=pricer))
    else:
        processor = StoreSpanProcessor(store, pricer=pricer)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    priced, _ = start_step(tracer, run, run_id, 1)
    priced.set_attributes(finished_step_attributes(input_tokens=1000, output_tokens=100))
    priced.end()
    unpriced, _ = start_step(tracer, run, run_id, 2)
    unpriced.set_attributes(finished_step_attributes())
    unpriced.set_attribute(attr.GEN_AI_REQUEST_MODEL, "demo-gpt-4o-mini")
    unpriced.end()
    run.end()
    assert processor.force_flush(10_000)
    return run_id


@pytest.mark.parametrize("end_only", [False, True], ids=["processor", "exporter"])
def test_costs_are_stored_with_the_steps(
    store: Store, provider: TracerProvider, end_only: bool
) -> None:
    run_id = _run_two_steps(store, provider, None, end_only=end_only)
    first, second = store.list_steps(run_id, payloads=False)
    assert first.metadata["stream_summary"] == {"part_count": 3}
    assert first.metadata["cost"]["total_usd"] == pytest.approx(1000 * 2.5 / 1e6 + 100 * 10 / 1e6)
    assert first.metadata["cost"]["match"] == "exact"
    assert "cost_unavailable" not in first.metadata
    assert second.metadata["cost_unavailable"] == NO_PRICE
    assert "cost" not in second.metadata
    run = store.get_run(run_id)
    assert run is not None
    assert run.summary["total_cost_usd"] == first.metadata["cost"]["total_usd"]
    assert run.summary["unpriced_step_count"] == 1


def test_overrides_reach_the_stored_steps(store: Store, provider: TracerProvider) -> None:
    pricer = Pricer({"demo-gpt-4o-mini": {"input_mtok": 1, "output_mtok": 2}})
    run_id = _run_two_steps(store, provider, pricer)
    _, second = store.list_steps(run_id, payloads=False)
    assert second.metadata["cost"]["match"] == "override"
    assert second.metadata["cost"]["total_usd"] == pytest.approx(10 / 1e6 + 5 * 2 / 1e6)


def test_configure_rejects_bad_overrides_before_doing_anything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    with pytest.raises(ValueError, match=r"prices\['m'\]\['input_mtok'\]: expected a non-negative"):
        chatdebug.configure(url, prices={"m": {"input_mtok": -1}})
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"m": {"in_mtok": 1}}))
    with pytest.raises(ValueError, match="unknown price key 'in_mtok'"):
        chatdebug.configure(url, prices_file=bad)
    assert not (tmp_path / "never.db").exists()


def test_cost_metric_adds_up_the_priced_steps(
    store: Store, provider: TracerProvider, metrics: Metrics
) -> None:
    processor = StoreSpanProcessor(store, metrics=metrics)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    for number in (1, 2):
        step, _ = start_step(tracer, run, run_id, number)
        step.set_attributes(finished_step_attributes(input_tokens=1000, output_tokens=100))
        step.end()
    run.end()
    assert processor.force_flush(10_000)
    labels = {"provider": "openai", "model": "gpt-4o"}
    assert sample(metrics, "chatdebug_llm_cost_usd_total", **labels) == pytest.approx(2 * 0.0035)


def test_run_summary_sums_priced_steps_and_counts_unpriced_ones() -> None:
    from tests.exporter.test_summary import RUN_ID, make_step

    def priced(number: int, total: float) -> Any:
        return make_step(number, metadata={"cost": {"total_usd": total, "currency": "USD"}})

    steps = [
        priced(1, 0.1),
        priced(2, 0.2),
        make_step(3, metadata=encode_json({"cost": {"total_usd": 0.000001}})),
        make_step(4, metadata={"cost_unavailable": NO_PRICE}),
        make_step(5),  # never priced (still open, or recorded before pricing)
    ]
    summary = aggregate_run_summary(RUN_ID, steps, {"total_cost_usd": 99, "unpriced_step_count": 9})
    assert summary["total_cost_usd"] == 0.300001  # exactly: summed as decimals
    assert summary["unpriced_step_count"] == 1
    nothing = aggregate_run_summary(
        RUN_ID, [make_step(1, metadata={"cost_unavailable": NO_USAGE})], None
    )
    assert "total_cost_usd" not in nothing  # unknown, not $0
    assert nothing["unpriced_step_count"] == 1


_RESPONSES_FIXTURE = (
    Path(__file__).parents[1] / "instrument" / "normalize" / "fixtures"
) / "openai_responses_text_response.json"
_TIER_USAGE = {"input": 40_000, "cached": 10_000, "output": 3_000}


def _chat_body(model: str, tier: str) -> dict[str, Any]:
    body = wire.openai_completion(
        "ok",
        model=model,
        prompt_tokens=_TIER_USAGE["input"],
        completion_tokens=_TIER_USAGE["output"],
    )
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = _TIER_USAGE["cached"]
    body["service_tier"] = tier
    return body


def _responses_body(model: str, tier: str) -> dict[str, Any]:
    body = json.loads(_RESPONSES_FIXTURE.read_text())
    body.update(model=model, service_tier=tier)
    body["usage"] = {
        "input_tokens": _TIER_USAGE["input"],
        "input_tokens_details": {"cached_tokens": _TIER_USAGE["cached"]},
        "output_tokens": _TIER_USAGE["output"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": _TIER_USAGE["input"] + _TIER_USAGE["output"],
    }
    return body


def test_openai_service_tier_prices_the_step_at_that_tier(
    database_url: str, fake_server: FakeServer
) -> None:
    """The tier OpenAI reports (Chat Completions and Responses) reaches the pricer through
    the codec, the step metadata and the exporter: flex steps cost the flex rate, a
    default-tier step the default rate (genai-prices' own calculation is the oracle)."""
    calls = [
        ("chat", "gpt-5", "flex"),
        ("chat", "gpt-5", "default"),
        ("responses", "o3", "flex"),
        ("responses", "o3", "default"),
    ]
    fake_server.enqueue(
        *(
            Reply(
                body=json.dumps(
                    _chat_body(model, tier) if api == "chat" else _responses_body(model, tier)
                ).encode(),
                headers=JSON_HEADERS,
            )
            for api, model, tier in calls
        )
    )
    config = chatdebug.configure(database_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        client = openai.OpenAI(
            base_url=fake_server.url + "/v1",
            api_key="sk-test",
            http_client=chatdebug.httpx2_client(),
            max_retries=0,
        )
        with client, chatdebug.run("tiers") as run:
            for api, model, _ in calls:
                if api == "chat":
                    client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi"}]
                    )
                else:
                    client.responses.create(model=model, input="hi")
        assert chatdebug.flush()
        assert run.id is not None
        steps = config.store.list_steps(run.id, payloads=False)
    finally:
        chatdebug.shutdown()
    usage = Usage(
        input_tokens=_TIER_USAGE["input"],
        cache_read_tokens=_TIER_USAGE["cached"],
        output_tokens=_TIER_USAGE["output"],
    )
    assert len(steps) == len(calls)
    totals: dict[tuple[str, str], float] = {}
    for step, (_, model, tier) in zip(steps, calls, strict=True):
        assert step.metadata["service_tier"] == tier
        cost = step.metadata["cost"]
        expected = genai_prices.calc_price(
            usage,
            model_ref=model,
            provider_id="openai",
            genai_request_timestamp=step.finished_at,
            price_context={"service_tier": tier},
        )
        assert cost["total_usd"] == pytest.approx(float(expected.total_price), abs=1e-9)
        assert cost["match"] == "exact"
        totals[model, tier] = cost["total_usd"]
    for model in ("gpt-5", "o3"):
        # The tiers really are priced differently (flex is half the default rate).
        assert totals[model, "flex"] == pytest.approx(totals[model, "default"] / 2, abs=1e-9)
