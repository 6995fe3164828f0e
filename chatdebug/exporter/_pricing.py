"""The cost of a step in US dollars, from its usage, provider, model and time.

Prices come from `genai-prices <https://github.com/pydantic/genai-prices>`_, the price
database bundled with the installed package (per provider and model, with the dates
prices changed and OpenAI's service tiers), plus user overrides in the same shape
(dollars per million tokens). Pricing is offline: genai-prices only fetches prices
when an ``UpdatePrices`` is started, which chatdebug never does, and chatdebug prices
against its own snapshot of the bundled data (``genai_prices.data.providers``), so an
``UpdatePrices`` the application starts for itself does not change the prices recorded
here either: the same usage always gets the same cost for a given package version.

A step is either priced, ``{"total_usd", "input_usd", "output_usd", "cache_read_usd",
"cache_write_usd", "currency": "USD", "source", "source_version", "match"}``, whose
parts add up to ``total_usd`` (``input_usd`` is the uncached input and any per-request
fee), or unpriced with a reason (:data:`NO_USAGE`, :data:`NO_PRICE`,
:data:`UNKNOWN_PROVIDER`): an unknown cost is never written as 0.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from .._pacing import Pacer
from .._safety import log_internal_error
from ..store import Step
from ._events import Event, UpdateStep

if TYPE_CHECKING:
    # genai-prices (and pydantic under it) is imported when the first step is priced,
    # on the writer's thread, not when chatdebug is imported.
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelPrice, PriceCalculation, Usage

__all__ = [
    "COST_KEY",
    "COST_UNAVAILABLE_KEY",
    "NO_PRICE",
    "NO_USAGE",
    "UNKNOWN_PROVIDER",
    "Pricer",
    "PricesError",
    "StepCost",
    "load_prices_file",
    "price_events",
    "price_step",
    "repriced_metadata",
    "validate_prices",
]

COST_KEY: Final = "cost"
"""Step metadata key of a priced step's cost."""
COST_UNAVAILABLE_KEY: Final = "cost_unavailable"
"""Step metadata key saying why a step has no cost."""

NO_USAGE: Final = "usage unknown"
"""The provider reported no token usage for the step."""
NO_PRICE: Final = "model has no price"
"""Neither the model that answered nor the one asked for has a price."""
UNKNOWN_PROVIDER: Final = "provider unknown"
"""The provider is not in the price database and the model name does not tell it."""

_SOURCE: Final = "genai-prices"
_OVERRIDE_SOURCE: Final = "override"

# Our ``gen_ai.provider.name`` values (OpenTelemetry GenAI conventions) -> genai-prices
# provider ids. A name missing here is looked up as it is, then by the model's name.
_PROVIDER_IDS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "groq": "groq",
    "mistral_ai": "mistral",
    "aws.bedrock": "aws",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "openrouter": "openrouter",
    "together": "together",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "fireworks": "fireworks",
}
# Providers whose formats are not priced by any database: lookup by model name only.
_NO_PROVIDER: Final = frozenset({"", "unknown", "ollama"})


@dataclass(frozen=True, slots=True)
class _PriceKeys:
    every: frozenset[str]
    cache_read: frozenset[str]
    cache_write: frozenset[str]
    output: frozenset[str]


@cache
def _price_keys() -> _PriceKeys:
    """genai-prices' price keys (``input_mtok``, ``output_mtok``, ``cache_read_mtok``,
    ``cache_write_mtok``, ``output_reasoning_mtok``, …), grouped by what they price."""
    from genai_prices.data_units import unit_data

    def keys(dimension: str, value: str) -> frozenset[str]:
        return frozenset(
            str(u["price_key"])
            for u in unit_data.values()
            if u.get("dimensions", {}).get(dimension) == value
        )

    return _PriceKeys(
        every=frozenset(str(u["price_key"]) for u in unit_data.values()),
        cache_read=keys("token_type", "cache_read"),
        cache_write=keys("token_type", "cache_write"),
        output=keys("direction", "output"),
    )


_COMMON_KEYS: Final = (
    "input_mtok, output_mtok, cache_read_mtok, cache_write_mtok, output_reasoning_mtok"
)
_MICRO: Final = Decimal("0.000000001")  # costs are kept to a billionth of a dollar


class PricesError(ValueError):
    """A price override (or prices file) that is not a valid price table."""


Match = Literal["exact", "fallback", "override"]


@dataclass(frozen=True, slots=True)
class StepCost:
    """Either a cost (``cost`` set) or the reason there is none (``unavailable``)."""

    cost: dict[str, Any] | None = None
    unavailable: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        """The step metadata keys this result sets."""
        if self.cost is not None:
            return {COST_KEY: self.cost}
        return {COST_UNAVAILABLE_KEY: self.unavailable or NO_PRICE}


def validate_prices(prices: object, *, where: str = "prices") -> dict[str, dict[str, Decimal]]:
    """Check user price overrides and return them as genai-prices model prices.

    ``prices`` maps a model name (matched case-insensitively against the step's model) to
    rates in dollars per million tokens, keyed as genai-prices' own table
    (``{"my-finetune": {"input_mtok": 1.5, "output_mtok": 6.0}}``). Raises
    :class:`PricesError` naming the bad entry: not a mapping, an unknown key, or a rate
    that is not a finite non-negative number.
    """
    if not isinstance(prices, Mapping):
        raise PricesError(
            f"{where}: expected an object of model name -> rates, got {type(prices).__name__}"
        )
    checked: dict[str, dict[str, Decimal]] = {}
    price_keys = _price_keys().every
    for model, rates in prices.items():
        if not isinstance(model, str) or not model.strip():
            raise PricesError(f"{where}: model names must be non-empty strings, got {model!r}")
        if not isinstance(rates, Mapping) or not rates:
            raise PricesError(
                f"{where}[{model!r}]: expected an object of rates such as "
                f'{{"input_mtok": 1.5, "output_mtok": 6.0}}, got {rates!r}'
            )
        values: dict[str, Decimal] = {}
        for key, rate in rates.items():
            if key not in price_keys:
                raise PricesError(
                    f"{where}[{model!r}]: unknown price key {key!r} (rates are dollars per "
                    f"million tokens, keyed as genai-prices: {_COMMON_KEYS}, …)"
                )
            if (
                isinstance(rate, bool)
                or not isinstance(rate, int | float)
                or not math.isfinite(rate)
                or rate < 0
            ):
                raise PricesError(
                    f"{where}[{model!r}][{key!r}]: expected a non-negative number of "
                    f"dollars, got {rate!r}"
                )
            values[key] = Decimal(str(rate))
        checked[model.strip().lower()] = values
    return checked


def load_prices_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON prices file (the shape of :func:`validate_prices`); :class:`PricesError`
    when it cannot be read, is not JSON or is not a valid price table."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PricesError(f"prices file {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise PricesError(f"prices file {os.fspath(path)!r}: invalid JSON ({exc})") from exc
    validate_prices(loaded, where=f"prices file {os.fspath(path)!r}")
    return dict(loaded)


def _usd(value: Decimal) -> float:
    return float(value.quantize(_MICRO))


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def _part(price: ModelPrice, usage: Usage, keys: frozenset[str]) -> Decimal:
    """The cost of the price keys in ``keys`` alone.

    The other rates are set to 0 rather than removed: genai-prices splits a total count
    (input tokens) among the parts it has rates for, so removing the cache rate would
    price cached tokens at the input rate.
    """
    from genai_prices.types import ModelPrice

    zeroed = ModelPrice(**dict(price.__dict__))
    for key, value in price.__dict__.items():
        if key.startswith("_") or value is None or key in keys:
            continue
        setattr(zeroed, key, Decimal(0))
    return zeroed.calc_price(usage)["total_price"]


class Pricer:
    """Prices steps from genai-prices' bundled data plus overrides.

    ``prices`` are overrides as :func:`validate_prices` takes them (checked here:
    :class:`PricesError`). The database is loaded at the first :meth:`price`, on the
    thread that prices. One pricer can be shared between threads.
    """

    def __init__(self, prices: Mapping[str, Any] | None = None) -> None:
        self._rates = validate_prices(prices) if prices else {}
        self._loaded: tuple[DataSnapshot, dict[str, ModelPrice], str] | None = None

    def _load(self) -> tuple[DataSnapshot, dict[str, ModelPrice], str]:
        """The price database, the overrides as genai-prices prices, and its version;
        loaded on first use (a few hundred milliseconds, off the caller's thread). No
        lock: two threads loading at once build the same thing, and a lock held across
        a fork would leave a child's writer stuck here."""
        loaded = self._loaded
        if loaded is None:
            import genai_prices
            from genai_prices import data
            from genai_prices.data_snapshot import DataSnapshot
            from genai_prices.types import ModelPrice

            snapshot = DataSnapshot(providers=data.providers, from_auto_update=False)
            overrides = {name: ModelPrice(**rates) for name, rates in self._rates.items()}
            loaded = self._loaded = (snapshot, overrides, genai_prices.__version__)
        return loaded

    @property
    def source_version(self) -> str:
        """The version of genai-prices whose data prices the steps."""
        return self._load()[2]

    def price(
        self,
        usage: Mapping[str, Any] | None,
        *,
        provider: str | None,
        models: tuple[str | None, ...],
        at: datetime | None,
        service_tier: str | None = None,
    ) -> StepCost:
        """Price one step.

        Args:
            usage: the step's usage object (``input_tokens``, ``output_tokens``,
                ``cache_read_tokens``, ``cache_creation_tokens``, ``reasoning_tokens``),
                ``None`` when the provider reported none.
            provider: the step's ``gen_ai.provider.name``.
            models: model names to try in order (the response's model, then the
                requested one).
            at: when the call was made (prices change over time); now when unknown.
            service_tier: the service tier the provider reported, if any.
        """
        names = [m for m in dict.fromkeys(models) if m]
        if not isinstance(usage, Mapping):
            return StepCost(unavailable=NO_USAGE)
        if not names:
            return StepCost(unavailable=NO_PRICE)
        genai_usage = self._usage(usage, provider, names[0])
        for name in names:
            override = self._load()[1].get(name.strip().lower())
            if override is not None:
                return self._cost(override, genai_usage, "override", _OVERRIDE_SOURCE, "")
        when = at if at is not None else datetime.now(UTC)
        context = {"service_tier": service_tier} if service_tier else None
        provider_id = _PROVIDER_IDS.get(provider or "", provider or "")
        known_provider = provider_id not in _NO_PROVIDER and (self._has_provider(provider_id))
        for index, name in enumerate(names):
            calc = self._calc(
                genai_usage, name, provider_id if known_provider else None, when, context
            )
            if calc is None:
                continue
            exact = (
                known_provider and index == 0 and any(calc.model is m for m in calc.provider.models)
            )
            return self._cost(
                calc.model_price,
                genai_usage,
                "exact" if exact else "fallback",
                _SOURCE,
                self.source_version,
                total=(calc.total_price, calc.output_price),
            )
        return StepCost(unavailable=NO_PRICE if known_provider else UNKNOWN_PROVIDER)

    def _has_provider(self, provider_id: str) -> bool:
        try:
            self._load()[0].find_provider(None, provider_id, None)
        except LookupError:
            return False
        return True

    def _calc(
        self,
        usage: Usage,
        model: str,
        provider_id: str | None,
        when: datetime,
        context: Mapping[str, str] | None,
    ) -> PriceCalculation | None:
        try:
            return self._load()[0].calc(usage, model, provider_id, None, when, context)
        except LookupError:
            return None

    @staticmethod
    def _usage(usage: Mapping[str, Any], provider: str | None, model: str) -> Usage:
        input_tokens = _count(usage, "input_tokens")
        cache_read = _count(usage, "cache_read_tokens")
        cache_write = _count(usage, "cache_creation_tokens")
        # genai-prices counts cache reads and writes inside input_tokens (as OpenAI and
        # Gemini report them); Anthropic's Messages format reports them beside it.
        if provider == "anthropic" or "claude" in model.lower():
            input_tokens += cache_read + cache_write
        values = {
            "input_tokens": input_tokens,
            "output_tokens": _count(usage, "output_tokens"),
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "output_reasoning_tokens": _count(usage, "reasoning_tokens"),
        }
        from genai_prices.types import Usage

        return Usage(**{k: v for k, v in values.items() if v})

    def _cost(
        self,
        price: ModelPrice,
        usage: Usage,
        match: Match,
        source: str,
        version: str,
        total: tuple[Decimal, Decimal] | None = None,
    ) -> StepCost:
        # One genai-prices calculation costs about a hundred microseconds of the writer's
        # CPU: the total and the output part come from one (the lookup's own when it was
        # made, ``total``), and a cache part is computed only when there are such tokens.
        if total is None:
            calculated = price.calc_price(usage)
            total = (calculated["total_price"], calculated["output_price"])
        total_price, output = total
        keys = _price_keys()
        # Read from the instance: a missing count is inferred (and may raise) on access.
        counts = vars(usage)
        cache_read = (
            _part(price, usage, keys.cache_read) if counts.get("cache_read_tokens") else Decimal(0)
        )
        cache_write = (
            _part(price, usage, keys.cache_write)
            if counts.get("cache_write_tokens")
            else Decimal(0)
        )
        total_usd = _usd(total_price)
        cache_read_usd = _usd(cache_read)
        cache_write_usd = _usd(cache_write)
        output_usd = _usd(output)
        # The remainder, so that the rounded parts add up to the rounded total exactly.
        input_usd = _usd(
            Decimal(str(total_usd))
            - Decimal(str(cache_read_usd))
            - Decimal(str(cache_write_usd))
            - Decimal(str(output_usd))
        )
        return StepCost(
            cost={
                "total_usd": total_usd,
                "input_usd": input_usd,
                "output_usd": output_usd,
                "cache_read_usd": cache_read_usd,
                "cache_write_usd": cache_write_usd,
                "currency": "USD",
                "source": source,
                "source_version": version,
                "match": match,
            }
        )


CostObserver = Callable[[str, str, float], None]
"""Called with (provider, model, total_usd) for every priced step (the cost metric)."""

_COMPONENT: Final = "pricing"


def _decoded(value: object) -> Any:
    if isinstance(value, str):  # EncodedJSON: orjson takes an exact str only
        return orjson.loads(str(value))
    return value


def _price_update(event: UpdateStep, pricer: Pricer, observe: CostObserver | None) -> UpdateStep:
    params = event.params
    usage = _decoded(params.usage)
    metadata = _decoded(params.metadata)
    merged = dict(metadata) if isinstance(metadata, Mapping) else {}
    tier = event.service_tier
    if tier is None and isinstance(merged.get("service_tier"), str):
        tier = merged["service_tier"]  # a tier the instrumentation kept in the metadata
    result = pricer.price(
        usage if isinstance(usage, Mapping) else None,
        provider=params.provider,
        models=event.models or (params.model,),
        at=params.finished_at,
        service_tier=tier,
    )
    merged.pop(COST_KEY, None)
    merged.pop(COST_UNAVAILABLE_KEY, None)
    merged.update(result.as_metadata())
    if observe is not None and result.cost is not None:
        observe(params.provider or "", params.model or "", result.cost["total_usd"])
    return replace(event, params=replace(params, metadata=merged), priced=True)


def price_events(
    events: list[Event],
    pricer: Pricer | None,
    observe: CostObserver | None = None,
    hurry: Callable[[], bool] | None = None,
) -> list[Event]:
    """``events`` with every final step update not priced yet priced (its metadata gets
    ``cost`` or ``cost_unavailable``, and it is marked ``priced``). Runs on the writer's
    thread, never the caller's. A failure to price one step is counted as an internal
    error of the ``pricing`` component and that step is written without a cost: pricing
    never costs a row. ``hurry`` says when not to pause between steps (see
    :class:`~chatdebug._pacing.Pacer`)."""
    if pricer is None:
        return events
    # A batch holds up to hundreds of steps: the writer hands the interpreter lock back
    # to the application between them, as it does while writing.
    pacer = Pacer(hurry=hurry)
    priced: list[Event] = []
    for event in events:
        if isinstance(event, UpdateStep) and not event.priced:
            event = price_step(event, pricer, observe)
            pacer.tick()
        priced.append(event)
    return priced


def price_step(
    event: UpdateStep, pricer: Pricer, observe: CostObserver | None = None
) -> UpdateStep:
    """``event`` priced as :func:`price_events` does, or only marked ``priced`` if
    pricing failed (it is not tried again)."""
    try:
        return _price_update(event, pricer, observe)
    except Exception as exc:
        log_internal_error(_COMPONENT, exc)
        return replace(event, priced=True)


def repriced_metadata(step: Step, pricer: Pricer) -> dict[str, Any]:
    """A stored step's metadata with its cost (or the reason it has none) computed again
    from its stored usage, provider, model and time, as ``chatdebug reprice`` writes it.
    Errors propagate: the caller is a command, not the recording path."""
    metadata = _decoded(step.metadata)
    merged = dict(metadata) if isinstance(metadata, Mapping) else {}
    usage = _decoded(step.usage)
    tier = merged.get("service_tier")
    result = pricer.price(
        usage if isinstance(usage, Mapping) else None,
        provider=step.provider,
        models=(step.model,),
        at=step.finished_at or step.started_at,
        service_tier=tier if isinstance(tier, str) else None,
    )
    merged.pop(COST_KEY, None)
    merged.pop(COST_UNAVAILABLE_KEY, None)
    merged.update(result.as_metadata())
    return merged
