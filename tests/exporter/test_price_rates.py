"""Measured rates: the pricer's fast path gives exactly the cost genai-prices' own
calculation gives (``Pricer(_fast=False)``), for every model of the bundled database,
every shape of usage, service tiers, tiered rates, overrides and the usages genai-prices
rejects."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import pytest
from genai_prices import data
from genai_prices.types import ModelPrice, Provider, TieredPrices

from chatdebug.exporter import Pricer
from chatdebug.exporter._pricing import _MICRO, StepCost, _step_cost

AT = datetime(2025, 9, 1, tzinfo=UTC)
LATER = datetime(2026, 11, 15, 23, 30, tzinfo=UTC)  # after the service tiers of 2026-10

USAGES: list[dict[str, int]] = [
    {"input_tokens": 1_234},
    {"input_tokens": 1_234, "output_tokens": 567},
    {"input_tokens": 5_000, "output_tokens": 300, "cache_read_tokens": 4_000},
    {"input_tokens": 5_000, "output_tokens": 300, "cache_creation_tokens": 2_000},
    {
        "input_tokens": 5_000,
        "output_tokens": 300,
        "cache_read_tokens": 1_000,
        "cache_creation_tokens": 2_000,
    },
    {"input_tokens": 800, "output_tokens": 3_000, "reasoning_tokens": 2_500},
    {"input_tokens": 0, "output_tokens": 0},
    # Above the tier thresholds (200k, 128k… input tokens) of tiered models.
    {"input_tokens": 300_000, "output_tokens": 20_000, "cache_read_tokens": 100_000},
    {"input_tokens": 250_000, "output_tokens": 9_000, "reasoning_tokens": 8_000},
    # Inconsistent: genai-prices raises for the models that price these counts.
    {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 100},
    {"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 50},
]
TIERS = (None, "flex", "priority")


def _outcome(pricer: Pricer, usage: dict[str, int], **where: Any) -> StepCost | tuple[str, str]:
    """The cost, or the error genai-prices raised (which the writer counts, unpriced)."""
    try:
        return pricer.price(usage, **where)
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def _models() -> Iterator[tuple[Provider, str, bool]]:
    for provider in data.providers:
        for model in provider.models:
            yield provider, model.id, bool(model.price_variants)


def _assert_same(fast: Pricer, slow: Pricer, models: list[tuple[Provider, str, bool]]) -> int:
    priced = 0
    for provider, model, has_variants in models:
        # A service tier changes only the prices of a model with variants (flex,
        # priority…); prices change with the date.
        when: list[tuple[datetime, str | None]] = [(AT, None), (LATER, "default")]
        if has_variants:
            when = [(at, tier) for at in (AT, LATER) for tier in TIERS]
        for usage in USAGES:
            for at, tier in when:
                where = {
                    "provider": provider.id,
                    "models": (model,),
                    "at": at,
                    "service_tier": tier,
                }
                expected = _outcome(slow, usage, **where)
                assert _outcome(fast, usage, **where) == expected, (where, usage)
                priced += isinstance(expected, StepCost) and expected.cost is not None
    return priced


def _sample() -> list[tuple[Provider, str, bool]]:
    """A deterministic spread of the models: a third of those with service tiers and a
    tenth of the others of the providers most steps come from, and twenty of the other
    providers' (the whole database is the slow test's)."""
    common = {"openai", "anthropic", "google"}
    models = list(_models())
    chosen = [m for i, m in enumerate(models) if m[0].id in common and i % (3 if m[2] else 10) == 0]
    others = [m for m in models if m[0].id not in common]
    return chosen + others[:: max(1, len(others) // 20)]


def test_measured_costs_are_genai_prices_own_on_a_sample() -> None:
    assert _assert_same(Pricer(), Pricer(_fast=False), _sample()) > 500


@pytest.mark.slow
def test_measured_costs_are_genai_prices_own_for_every_model() -> None:
    models = list(_models())
    assert len(models) > 1_000
    assert _assert_same(Pricer(), Pricer(_fast=False), models) > 10_000


def test_tiered_models_at_their_thresholds_are_the_same() -> None:
    """A tier's rate applies above its threshold: at it, one below and one above."""
    fast, slow = Pricer(), Pricer(_fast=False)
    tiered = 0
    for provider in data.providers:
        for model in provider.models:
            prices = model.prices if isinstance(model.prices, list) else [model.prices]
            thresholds = {
                tier.start
                for conditional in prices
                for value in vars(getattr(conditional, "prices", conditional)).values()
                if isinstance(value, TieredPrices)
                for tier in value.tiers
            }
            tiered += bool(thresholds)
            for threshold in sorted(thresholds)[:2]:
                for input_tokens in (threshold - 1, threshold, threshold + 1):
                    usage = {
                        "input_tokens": input_tokens,
                        "output_tokens": 1_000,
                        "cache_read_tokens": threshold // 2,
                    }
                    where = {"provider": provider.id, "models": (model.id,), "at": AT}
                    assert _outcome(fast, usage, **where) == _outcome(slow, usage, **where)
    assert tiered > 20


def test_fallbacks_unknown_models_and_providers_are_the_same() -> None:
    fast, slow = Pricer(), Pricer(_fast=False)
    usage = {"input_tokens": 1_000, "output_tokens": 100, "cache_read_tokens": 200}
    cases: list[tuple[str | None, tuple[str | None, ...]]] = [
        ("openai", ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")),
        ("openai", ("my-gateway-alias", "gpt-4o")),
        ("openai", ("claude-sonnet-4-5",)),  # found through another provider
        ("unknown", ("gpt-4o",)),
        ("ollama", ("llama-local",)),
        ("openai", ("demo-gpt-4o-mini",)),
        ("openrouter", ("openai/gpt-5",)),
        ("gcp.vertex_ai", ("gemini-2.5-pro",)),
        ("anthropic", ("claude-opus-4-1", "claude-sonnet-4-5")),
        ("groq", ("whisper-large-v3",)),
        (None, ("gpt-5", None)),
        ("openai", (None,)),
    ]
    for provider, models in cases:
        for tier in TIERS:
            where = {"provider": provider, "models": models, "at": AT, "service_tier": tier}
            assert _outcome(fast, usage, **where) == _outcome(slow, usage, **where), where
    assert fast.price(None, provider="openai", models=("gpt-4o",), at=AT) == slow.price(
        None, provider="openai", models=("gpt-4o",), at=AT
    )


def test_overrides_are_the_same() -> None:
    prices = {
        "my-finetune": {"input_mtok": 1.5, "output_mtok": 6.0, "cache_read_mtok": 0.15},
        "odd-rates": {"input_mtok": 0.123456789, "output_mtok": 3, "cache_write_mtok": 2.25},
        "per-request": {"input_mtok": 1, "requests_kcount": 0.5},
        "gpt-4o": {"input_mtok": 2, "output_mtok": 8},
    }
    fast, slow = Pricer(prices), Pricer(prices, _fast=False)
    for model in prices:
        for usage in USAGES:
            where = {"provider": "openai", "models": (model,), "at": AT}
            assert _outcome(fast, usage, **where) == _outcome(slow, usage, **where)


def test_counts_beyond_the_exact_range_and_odd_values_are_the_same() -> None:
    fast, slow = Pricer(), Pricer(_fast=False)
    usages: list[dict[str, Any]] = [
        {"input_tokens": 10**20, "output_tokens": 10**19},
        {"input_tokens": 10**13, "output_tokens": 3, "cache_read_tokens": 10**12},
        {"input_tokens": True, "output_tokens": 5.0, "cache_read_tokens": -3},
        {"input_tokens": "12", "output_tokens": 7},
    ]
    for usage in usages:
        for provider, model in (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5")):
            where = {"provider": provider, "models": (model,), "at": AT}
            assert _outcome(fast, usage, **where) == _outcome(slow, usage, **where), usage


def test_a_thread_with_a_coarser_decimal_context_gets_genai_prices_own_rounding() -> None:
    # In 4 digits genai-prices rounds 0.12345 to 0.1234 before adding 0.00004: the cost
    # is 1.2344e-7 dollars, 1.23e-7 written, where rounding the exact sum (1.2349e-7) to
    # 4 digits would write 1.24e-7.
    prices = {"odd": {"input_mtok": 0.12345, "output_mtok": 0.00004}}
    usage = {"input_tokens": 1, "output_tokens": 1}
    where: dict[str, Any] = {"provider": "openai", "models": ("odd",), "at": AT}
    pricer = Pricer(prices)
    pricer.price(usage, **where)  # measured in the default context
    results: list[StepCost | tuple[str, str]] = []

    def price() -> None:
        with localcontext(prec=4):
            results.append(_outcome(pricer, usage, **where))
            results.append(_outcome(Pricer(prices, _fast=False), usage, **where))

    thread = threading.Thread(target=price)
    thread.start()
    thread.join()
    assert isinstance(results[1], StepCost) and results[1].cost is not None
    assert results[1].cost["total_usd"] == 1.23e-7
    assert results[0] == results[1]


def test_a_model_priced_again_is_not_calculated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    pricer = Pricer()
    usage = {"input_tokens": 2_000, "output_tokens": 300, "cache_read_tokens": 1_000}
    where: dict[str, Any] = {"provider": "openai", "models": ("gpt-4o-mini",), "at": AT}
    first = pricer.price(usage, **where)
    calls = 0
    calc_price = ModelPrice.calc_price

    def counted(self: ModelPrice, usage: object) -> Any:
        nonlocal calls
        calls += 1
        return calc_price(self, usage)

    monkeypatch.setattr(ModelPrice, "calc_price", counted)
    again = pricer.price({**usage, "input_tokens": 7_000}, **where)
    assert calls == 0
    assert first != again
    assert again == Pricer(_fast=False).price({**usage, "input_tokens": 7_000}, **where)
    # A new shape of usage is measured (genai-prices is asked), then not again.
    pricer.price({**usage, "reasoning_tokens": 100}, **where)
    assert calls > 0
    calls = 0
    pricer.price({**usage, "reasoning_tokens": 250}, **where)
    assert calls == 0
    # At a service tier, genai-prices resolves a new price object every time.
    flex: dict[str, Any] = {**where, "models": ("gpt-5",), "at": LATER, "service_tier": "flex"}
    pricer.price(usage, **flex)
    calls = 0
    again = pricer.price({**usage, "output_tokens": 900}, **flex)
    assert calls == 0
    assert again == Pricer(_fast=False).price({**usage, "output_tokens": 900}, **flex)
    standard = pricer.price({**usage, "output_tokens": 900}, **{**flex, "service_tier": None})
    assert again != standard  # the flex rates, not the standard ones


def _written_cost(figures: tuple[Decimal, Decimal, Decimal, Decimal]) -> dict[str, float]:
    """The figures as written before the fast path, literally."""

    def usd(value: Decimal) -> float:
        return float(value.quantize(_MICRO))

    total, output, read, write = figures
    return {
        "total_usd": usd(total),
        "input_usd": usd(
            Decimal(str(usd(total)))
            - Decimal(str(usd(read)))
            - Decimal(str(usd(write)))
            - Decimal(str(usd(output)))
        ),
        "output_usd": usd(output),
        "cache_read_usd": usd(read),
        "cache_write_usd": usd(write),
    }


def test_costs_are_rounded_and_split_as_before() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        # Up to 1e18 dollars: beyond, both raise (a billionth of it has too many digits).
        scale = rng.choice((Decimal("1e-12"), Decimal("1e-6"), Decimal(1), Decimal(10**6)))
        parts = [
            Decimal(rng.randrange(0, 10 ** rng.randrange(1, 12))) * scale
            if rng.random() < 0.8
            else Decimal(0)
            for _ in range(3)
        ]
        total = sum(parts, Decimal(rng.randrange(0, 10**6)) * Decimal("1e-8"))
        figures = (total, parts[0], parts[1], parts[2])
        cost = _step_cost(figures, "exact", "genai-prices", "1")
        assert cost.cost is not None
        written = _written_cost(figures)
        assert {key: repr(cost.cost[key]) for key in written} == {
            key: repr(value) for key, value in written.items()
        }
