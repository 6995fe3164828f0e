"""The cost of a step in US dollars, from its usage, provider, model and time.

Prices come from `genai-prices <https://github.com/pydantic/genai-prices>`_, the price
database bundled with the installed package (per provider and model, with the dates
prices changed and OpenAI's service tiers), plus user overrides in the same shape
(dollars per million tokens). Pricing is offline: genai-prices only fetches prices
when an ``UpdatePrices`` is started, which chatdebug never does, and chatdebug prices
against its own snapshot of the bundled data (``genai_prices.data.providers``), so an
``UpdatePrices`` the application starts for itself does not change the prices recorded
here either: the same usage always gets the same cost for a given package version.
genai-prices' calculation of one step takes a hundred microseconds or more; the figures
of a price are affine in the token counts, so most steps are priced from coefficients
measured once from that calculation (``_price_rates``): the same costs, to the bit.

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
from decimal import Decimal, getcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from .._pacing import Pacer
from .._safety import log_internal_error
from ..store import Step
from ._events import Event, UpdateStep
from ._price_rates import (
    COUNT_KEYS,
    PRECISION,
    Counts,
    Figures,
    PriceShape,
    Rates,
    measure_rates,
    price_shape,
    usage_shape,
)

if TYPE_CHECKING:
    # genai-prices (and pydantic under it) is imported when the first step is priced,
    # on the writer's thread, not when chatdebug is imported.
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, PriceCalculation, Usage

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
_EXACT_FLOATS: Final = Decimal(10**6)  # costs of at most 15 digits
# Models whose usage genai-prices rewrites before pricing it (billed per started seconds).
_BILLED_BY_SECONDS: Final = frozenset({"whisper-large-v3", "whisper-large-v3-turbo"})
# Measured prices kept per pricer: a few per model and shape of usage in use.
_MEASURED_KEPT: Final = 4096
_UNMEASURED: Final[Any] = object()
_ByUsage = dict[tuple[int, int], Rates | None]


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
    if type(value) is int:  # the usual case, first
        return value if value > 0 else 0
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

    def __init__(self, prices: Mapping[str, Any] | None = None, *, _fast: bool = True) -> None:
        # ``_fast=False``: every figure from genai-prices' own calculation, the reference
        # the measured rates are compared with (tests, benchmarks).
        self._rates = validate_prices(prices) if prices else {}
        self._loaded: tuple[DataSnapshot, dict[str, ModelPrice], str] | None = None
        self._fast = _fast
        # Price (by value) -> (usage shape, tier bracket) -> its measured rates, or None:
        # genai-prices calculates. Filled by whichever thread prices; two threads
        # measuring one price at once store the same rates.
        self._measured: dict[tuple[tuple[str, Any], ...], _ByUsage] = {}
        # genai-prices' lookups, which depend on nothing else: (model, provider id) ->
        # model, and provider -> (provider id, known).
        self._found: dict[tuple[str, str | None], Any] = {}
        self._providers: dict[str | None, tuple[str, bool]] = {}
        # The same by identity, for the price objects priced again and again: id(price),
        # or (rate names, ids of the rates) for a copy with a service tier's rates ->
        # (price, its shape, its rates).
        self._shapes: dict[object, tuple[ModelPrice, PriceShape | None, _ByUsage | None]] = {}

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
        counts = _counts(usage, provider, names[0])
        when = at if at is not None else datetime.now(UTC)
        context = {"service_tier": service_tier} if service_tier else None
        if self._fast:
            measured = self._price_measured(counts, provider, names, when, context)
            if measured is not None:
                return measured
        return self._price_calculated(counts, provider, names, when, context)

    def _price_measured(
        self,
        counts: Counts,
        provider: str | None,
        names: list[str],
        when: datetime,
        context: Mapping[str, str] | None,
    ) -> StepCost | None:
        """:meth:`price` from measured rates, the lookup done as genai-prices does it;
        ``None`` when a price has no rates (the step is calculated by genai-prices)."""
        _, overrides, version = self._load()
        for name in names if overrides else ():
            override = overrides.get(name.strip().lower())
            if override is not None:
                return self._measured_cost(
                    override, counts, "override", _OVERRIDE_SOURCE, "", stable=True
                )
        provider_id, known_provider = self._provider(provider)
        for index, name in enumerate(names):
            found = self._find(name, provider_id if known_provider else None)
            if found is None:
                continue
            model, listed, rewritten = found
            if rewritten:
                return None
            # As genai-prices' ``ModelInfo.calc_price``: the variants of a model found
            # through another provider are not for this provider's context. A context
            # changes only the prices of a model with variants (it gets a copy of its
            # price with them): without one, the model's own price object, the same
            # every time, whose rates are looked up by identity.
            varied = bool(context and listed and model.price_variants)
            try:
                price = model.get_prices(when, context if varied else None)
            except LookupError:
                return None  # genai-prices' calculation moves on to the next name
            exact = known_provider and index == 0 and listed
            match: Match = "exact" if exact else "fallback"
            return self._measured_cost(price, counts, match, _SOURCE, version, stable=not varied)
        return StepCost(unavailable=NO_PRICE if known_provider else UNKNOWN_PROVIDER)

    def _find(self, name: str, provider_id: str | None) -> tuple[ModelInfo, bool, bool] | None:
        """genai-prices' model for ``name`` (``None`` when it has none), whether it is one
        of the provider's own (rather than found through another provider), and whether
        genai-prices rewrites the usage it prices for it."""
        key = (name, provider_id)
        found = self._found.get(key, _UNMEASURED)
        if found is _UNMEASURED:
            try:
                provider, model = self._load()[0].find_provider_model(name, None, provider_id, None)
            except LookupError:
                found = None
            else:
                found = (
                    model,
                    any(model is m for m in provider.models),
                    provider.id == "groq" and model.id in _BILLED_BY_SECONDS,
                )
            if len(self._found) >= _MEASURED_KEPT:
                self._found.clear()
            self._found[key] = found
        return found  # type: ignore[no-any-return]

    def _measured_cost(
        self,
        price: ModelPrice,
        counts: Counts,
        match: Match,
        source: str,
        version: str,
        *,
        stable: bool,
    ) -> StepCost | None:
        """The cost from ``price``'s measured rates (``stable``: ``price`` is an object
        priced again and again; else a copy of one, with the same rate objects)."""
        # Kept with its key, a price keeps its rates alive: their ids are not reused.
        if stable:
            key: object = id(price)
        else:
            values = price.__dict__
            key = (tuple(values), tuple(map(id, values.values())))
        known = self._shapes.get(key)
        if known is not None:
            _, shape, measured = known
        else:
            shape = price_shape(price)
            measured = None if shape is None else self._measured.get(shape.key)
            if shape is not None and measured is None:
                if len(self._measured) >= _MEASURED_KEPT:
                    self._measured.clear()
                measured = self._measured[shape.key] = {}
            if len(self._shapes) >= _MEASURED_KEPT:
                self._shapes.clear()
            self._shapes[key] = (price, shape, measured)
        if shape is None or measured is None:
            return None
        usage = usage_shape(counts)
        bracket = shape.bracket(counts[0])
        rates = measured.get((usage, bracket), _UNMEASURED)
        if rates is _UNMEASURED:
            rates = measured[usage, bracket] = measure_rates(price, shape, usage, bracket, _figures)
        if rates is None:
            return None
        figures = rates.figures(counts)
        return None if figures is None else _step_cost(figures, match, source, version)

    def _price_calculated(
        self,
        counts: Counts,
        provider: str | None,
        names: list[str],
        when: datetime,
        context: Mapping[str, str] | None,
    ) -> StepCost:
        """:meth:`price` with every figure calculated by genai-prices."""
        genai_usage = _usage(counts)
        for name in names:
            override = self._load()[1].get(name.strip().lower())
            if override is not None:
                return self._cost(override, genai_usage, "override", _OVERRIDE_SOURCE, "")
        provider_id, known_provider = self._provider(provider)
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

    def _provider(self, provider: str | None) -> tuple[str, bool]:
        """The genai-prices id of ``provider`` and whether the database has it."""
        known = self._providers.get(provider)
        if known is None:
            provider_id = _PROVIDER_IDS.get(provider or "", provider or "")
            known = (
                provider_id,
                provider_id not in _NO_PROVIDER and self._has_provider(provider_id),
            )
            if len(self._providers) >= _MEASURED_KEPT:
                self._providers.clear()
            self._providers[provider] = known
        return known

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

    def _cost(
        self,
        price: ModelPrice,
        usage: Usage,
        match: Match,
        source: str,
        version: str,
        total: tuple[Decimal, Decimal] | None = None,
    ) -> StepCost:
        # Read from the instance: a missing count is inferred (and may raise) on access.
        counts = vars(usage)
        figures = _figures(
            price,
            usage,
            bool(counts.get("cache_read_tokens")),
            bool(counts.get("cache_write_tokens")),
            total,
        )
        return _step_cost(figures, match, source, version)


def _counts(usage: Mapping[str, Any], provider: str | None, model: str) -> Counts:
    """The step's counts as genai-prices counts them."""
    input_tokens = _count(usage, "input_tokens")
    cache_read = _count(usage, "cache_read_tokens")
    cache_write = _count(usage, "cache_creation_tokens")
    # genai-prices counts cache reads and writes inside input_tokens (as OpenAI and
    # Gemini report them); Anthropic's Messages format reports them beside it.
    if provider == "anthropic" or "claude" in model.lower():
        input_tokens += cache_read + cache_write
    return (
        input_tokens,
        _count(usage, "output_tokens"),
        cache_read,
        cache_write,
        _count(usage, "reasoning_tokens"),
    )


def _usage(counts: Counts) -> Usage:
    from genai_prices.types import Usage

    return Usage(**{key: value for key, value in zip(COUNT_KEYS, counts, strict=True) if value})


def _figures(
    price: ModelPrice,
    usage: Usage,
    cache_read: bool,
    cache_write: bool,
    total: tuple[Decimal, Decimal] | None = None,
) -> Figures:
    """The total, output, cache read and cache write figures of ``usage`` at ``price``,
    by genai-prices (a cache part is 0 unless asked for)."""
    # One genai-prices calculation costs about a hundred microseconds of the writer's
    # CPU: the total and the output part come from one (the lookup's own when it was
    # made, ``total``), and a cache part is computed only when there are such tokens.
    if total is None:
        calculated = price.calc_price(usage)
        total = (calculated["total_price"], calculated["output_price"])
    keys = _price_keys()
    return (
        total[0],
        total[1],
        _part(price, usage, keys.cache_read) if cache_read else Decimal(0),
        _part(price, usage, keys.cache_write) if cache_write else Decimal(0),
    )


def _step_cost(figures: Figures, match: Match, source: str, version: str) -> StepCost:
    total = figures[0].quantize(_MICRO)
    output = figures[1].quantize(_MICRO)
    cache_read = figures[2].quantize(_MICRO)
    cache_write = figures[3].quantize(_MICRO)
    total_usd = float(total)
    cache_read_usd = float(cache_read)
    cache_write_usd = float(cache_write)
    output_usd = float(output)
    # The remainder, so that the rounded parts add up to the rounded total exactly: the
    # total less the parts as written, ``Decimal(str(part_usd))``. Below a million
    # dollars a part has at most 15 digits, which its float's shortest repr gives back
    # exactly (any 15 digits survive a trip through a double), so that is the part
    # itself, without the trip through text; a part of 0 takes nothing away; and in a
    # context of at least 28 digits none of these subtractions is rounded.
    if getcontext().prec >= PRECISION and (
        max(abs(total), abs(output), abs(cache_read), abs(cache_write)) < _EXACT_FLOATS
    ):
        remainder = total
        if cache_read:
            remainder -= cache_read
        if cache_write:
            remainder -= cache_write
        remainder -= output
    else:
        remainder = (
            Decimal(str(total_usd))
            - Decimal(str(cache_read_usd))
            - Decimal(str(cache_write_usd))
            - Decimal(str(output_usd))
        )
    return StepCost(
        cost={
            "total_usd": total_usd,
            "input_usd": _usd(remainder),
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
