"""genai-prices' arithmetic for one model price, measured once from genai-prices itself.

Pricing a step with genai-prices takes about a hundred microseconds: most of it goes to
validating the price table and splitting the usage into the counts each rate applies to,
the same work for every step of a model. Yet every figure the pricer needs (total, output
part, cache read part, cache write part) is an affine function of the token counts, as
long as the same counts are nonzero, they are consistent (cache reads and writes within
the input, reasoning within the output) and, for tiered rates, the input stays between
the same two tier thresholds: genai-prices sums rate times count over its split of the
counts.

:func:`measure_rates` finds that function by asking genai-prices for the figures at a few
usages, checks that it reproduces genai-prices exactly at others, and bounds the counts
for which both stay exact: genai-prices computes with the thread's decimal context (28
digits by default), and within the bound none of its products or sums are rounded, so the
affine figure is the same number, not an approximation of it. Anything else (rates per
hour, unknown keys, a usage or price genai-prices rejects) gets no rates: the caller
prices it with genai-prices.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, getcontext
from functools import cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice, Usage

__all__ = [
    "COUNT_KEYS",
    "PRECISION",
    "Counts",
    "Figures",
    "Measure",
    "PriceShape",
    "Rates",
    "measure_rates",
    "price_shape",
    "usage_shape",
]

COUNT_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
)
"""genai-prices' usage keys of a step's counts, in the order of :data:`Counts`."""

Counts = tuple[int, int, int, int, int]
"""Non-negative counts of :data:`COUNT_KEYS`: input (cache reads and writes included),
output (reasoning included), cache read, cache write, reasoning."""

Figures = tuple[Decimal, Decimal, Decimal, Decimal]
"""Total, output part, cache read part, cache write part, as genai-prices computes them."""

Measure = Callable[["ModelPrice", "Usage", bool, bool], Figures]
"""The figures of a usage at a price, computed by genai-prices (the two flags say whether
the cache read and cache write parts are wanted: they are 0 when not)."""

PRECISION: Final = 28
"""Decimal digits the exactness bound assumes (the default context's); in a thread whose
context has fewer, :meth:`Rates.figures` declines."""

_INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING = range(5)
# Cache reads and writes are counted inside the input and reasoning inside the output: a
# unit of one of them alone is not a consistent usage (genai-prices rejects it).
_WITHIN: Final = {_CACHE_READ: _INPUT, _CACHE_WRITE: _INPUT, _REASONING: _OUTPUT}

Row = tuple[int, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class PriceShape:
    """A price as a dictionary key: its rates by value (a price with a service tier's
    rates is a new object every time), and the input thresholds of its tiers."""

    key: tuple[tuple[str, Any], ...]
    thresholds: tuple[int, ...]

    def bracket(self, input_tokens: int) -> int:
        """How many tier thresholds ``input_tokens`` is above (genai-prices applies a
        tier's rate above its threshold): the rates are affine between two of them."""
        return bisect_left(self.thresholds, input_tokens) if self.thresholds else 0


def price_shape(price: ModelPrice) -> PriceShape | None:
    """``price`` as a key, or ``None`` when it has rates of a kind not measured here."""
    items = tuple(price.__dict__.items())
    if all(value is None or type(value) is Decimal for _, value in items):
        return PriceShape(items, ())
    from genai_prices.types import TieredPrices

    thresholds: set[int] = set()
    for _, value in items:
        if value is None or type(value) is Decimal:
            continue
        if type(value) is not TieredPrices:
            return None
        for tier in value.tiers:
            if type(tier.start) is not int:
                return None
            thresholds.add(tier.start)
    key = tuple(
        (name, _tiered_key(value) if isinstance(value, TieredPrices) else value)
        for name, value in items
    )
    return PriceShape(key, tuple(sorted(thresholds)))


def _tiered_key(value: Any) -> tuple[Any, ...]:
    return (value.base, tuple((tier.start, tier.price) for tier in value.tiers))


def usage_shape(counts: Counts) -> int:
    """Bit ``i`` set when count ``i`` is nonzero: usages of one shape share rates."""
    i, o, r, w, t = counts
    return (i > 0) | (o > 0) << 1 | (r > 0) << 2 | (w > 0) << 3 | (t > 0) << 4


@dataclass(frozen=True, slots=True)
class Rates:
    """The figures of one price for the usages of one shape (and tier bracket).

    Each figure is ``(c0 + c1*input + c2*output + c3*cache_read + c4*cache_write +
    c5*reasoning) * 10**exponent`` with integer coefficients, exact for counts up to
    ``limit``.
    """

    exponent: int
    limit: int
    total: Row
    output: Row
    cache_read: Row | None
    cache_write: Row | None

    def figures(self, counts: Counts) -> Figures | None:
        """The figures of ``counts`` (of the shape and bracket these rates are for), or
        ``None`` when the rates do not cover them: inconsistent counts (genai-prices
        raises for those), counts beyond the exact range, or a thread whose decimal
        context could round what genai-prices computes."""
        i, o, r, w, t = counts
        if i < r + w or o < t or max(counts) > self.limit or getcontext().prec < PRECISION:
            return None
        # Integers are exact at any size; a figure has at most PRECISION digits here.
        e = self.exponent
        c = self.total
        total = Decimal(c[0] + c[1] * i + c[2] * o + c[3] * r + c[4] * w + c[5] * t).scaleb(e)
        c = self.output
        output = Decimal(c[0] + c[1] * i + c[2] * o + c[3] * r + c[4] * w + c[5] * t).scaleb(e)
        read = write = _ZERO
        if (cr := self.cache_read) is not None:
            read = Decimal(
                cr[0] + cr[1] * i + cr[2] * o + cr[3] * r + cr[4] * w + cr[5] * t
            ).scaleb(e)
        if (cw := self.cache_write) is not None:
            write = Decimal(
                cw[0] + cw[1] * i + cw[2] * o + cw[3] * r + cw[4] * w + cw[5] * t
            ).scaleb(e)
        return total, output, read, write


_ZERO: Final = Decimal(0)


class _NotAffine(Exception):
    """The price is not one :class:`Rates` can reproduce."""


def measure_rates(
    price: ModelPrice, shape: PriceShape, usage: int, bracket: int, measure: Measure
) -> Rates | None:
    """The rates of ``price`` for usages of shape ``usage`` whose input is in tier
    ``bracket``, measured with ``measure`` (genai-prices) and checked against it;
    ``None`` when they cannot be measured exactly or genai-prices does not price such
    usages (it raises, or disagrees at a check)."""
    try:
        return _measure(price, shape, usage, bracket, measure)
    except _NotAffine:
        return None
    except Exception:  # genai-prices rejects the price or the usage: it will again
        return None


def _measure(
    price: ModelPrice, shape: PriceShape, present: int, bracket: int, measure: Measure
) -> Rates:
    for key, within in _WITHIN.items():
        if present >> key & 1 and not present >> within & 1:
            raise _NotAffine  # inconsistent whatever the counts: genai-prices raises
    exponent, bound = _exponent_and_bound(price)
    if not _consistent_region_priced(price, present, measure):
        raise _NotAffine
    limit = (10**PRECISION - 1) // bound if bound else 10**PRECISION
    read, write = bool(present >> _CACHE_READ & 1), bool(present >> _CACHE_WRITE & 1)
    low = shape.thresholds[bracket - 1] if bracket else -1  # inputs above low…
    high = shape.thresholds[bracket] if bracket < len(shape.thresholds) else None  # …to high

    def at(counts: Counts) -> tuple[int, int, int, int]:
        figures = measure(price, _usage(counts, present), read, write)
        return (
            _scaled(figures[0], exponent),
            _scaled(figures[1], exponent),
            _scaled(figures[2], exponent),
            _scaled(figures[3], exponent),
        )

    # Measured from a usage whose input is in the bracket: ``base`` input tokens, the
    # other counts 0 (given as 0, so that the usage has the shape's keys).
    base = max(low + 1, 1) if present & 1 else 0
    if present & 1 and high is not None and base + 1 > high:
        raise _NotAffine  # a bracket of one input count
    origin = (base, 0, 0, 0, 0)
    at_origin = at(origin)
    columns: dict[int, tuple[int, ...]] = {}
    for key in range(5):
        if not present >> key & 1:
            continue
        below = at_origin if key != _REASONING else at(_plus(origin, _OUTPUT))
        above = at(_plus(origin, key) if key != _REASONING else _plus(origin, _OUTPUT, key))
        columns[key] = tuple(a - b for a, b in zip(above, below, strict=True))

    def row(figure: int) -> Row:
        c = [columns[k][figure] if k in columns else 0 for k in range(5)]
        constant = at_origin[figure] - c[_INPUT] * base
        return (constant, c[0], c[1], c[2], c[3], c[4])

    rates = Rates(
        exponent=exponent,
        limit=limit,
        total=row(0),
        output=row(1),
        cache_read=row(2) if read else None,
        cache_write=row(3) if write else None,
    )
    for counts in _checks(present, low, high):
        if (
            max(counts) > limit
            or usage_shape(counts) != present
            or shape.bracket(counts[_INPUT]) != bracket
        ):
            raise _NotAffine
        from genai_prices.types import Usage

        usage = Usage(**{COUNT_KEYS[k]: counts[k] for k in range(5) if counts[k]})
        if rates.figures(counts) != measure(price, usage, read, write):
            raise _NotAffine
    return rates


def _plus(counts: Counts, *keys: int) -> Counts:
    added = list(counts)
    for key in keys:
        added[key] += 1
    return (added[0], added[1], added[2], added[3], added[4])


def _usage(counts: Counts, present: int) -> Usage:
    from genai_prices.types import Usage

    return Usage(**{COUNT_KEYS[k]: counts[k] for k in range(5) if counts[k] or present >> k & 1})


# (priced keys, usage shape) -> whether genai-prices prices every consistent usage of
# that shape: it depends on which rates are set, not on their values.
_region_priced: dict[tuple[frozenset[str], int], bool] = {}


def _consistent_region_priced(price: ModelPrice, present: int, measure: Measure) -> bool:
    """Whether genai-prices prices every consistent usage of shape ``present``.

    genai-prices splits the counts into the parts each rate applies to and raises when a
    part comes out negative. The parts are linear in the counts, so they are
    non-negative over the consistent usages (input at least cache reads plus writes,
    output at least reasoning) if they are at the usages those are sums of: one input
    token, alone or with one cache read or one cache write; one output token, alone or
    with one reasoning token.
    """
    priced = frozenset(k for k, v in price.__dict__.items() if v is not None)
    known = _region_priced.get((priced, present))
    if known is not None:
        return known
    edges: list[Counts] = [(0, 0, 0, 0, 0)]
    if present >> _INPUT & 1:
        edges.append((1, 0, 0, 0, 0))
        edges.extend(
            _plus((1, 0, 0, 0, 0), k) for k in (_CACHE_READ, _CACHE_WRITE) if present >> k & 1
        )
    if present >> _OUTPUT & 1:
        edges.append((0, 1, 0, 0, 0))
        if present >> _REASONING & 1:
            edges.append((0, 1, 0, 0, 1))
    try:
        for counts in edges:
            measure(price, _usage(counts, present), False, False)
    except Exception:
        priced_everywhere = False
    else:
        priced_everywhere = True
    if len(_region_priced) >= 1024:
        _region_priced.clear()
    _region_priced[priced, present] = priced_everywhere
    return priced_everywhere


def _checks(present: int, low: int, high: int | None) -> Iterator[Counts]:
    """Usages of shape ``present`` with an input above ``low`` and at most ``high``,
    where measured rates are checked: one at the top of the bracket, one at the bottom
    on the edge of the consistent region (cache reads and writes making up the whole
    input, reasoning the whole output)."""
    top = high if high is not None else max(low, 0) + 900_001
    bottom = low + 1 if low >= 0 else min(54_321, top)
    for i, r, w, o, t in (
        (top, top // 3, top // 5, 70_001, 30_011),
        (bottom, bottom // 2, bottom - bottom // 2, 4_321, 4_321),
    ):
        read = r if present >> _CACHE_READ & 1 else 0
        write = w if present >> _CACHE_WRITE & 1 else 0
        if read and not write:
            read = r + w
        elif write and not read:
            write = r + w
        yield (
            i if present >> _INPUT & 1 else 0,
            o if present >> _OUTPUT & 1 else 0,
            read,
            write,
            t if present >> _REASONING & 1 else 0,
        )


def _exponent_and_bound(price: ModelPrice) -> tuple[int, int]:
    """The exponent of the smallest digit any figure of ``price`` can have, and a bound
    ``B`` such that with every count at most ``(10**PRECISION - 1) // B`` every product
    and sum genai-prices computes (and every figure here) fits in ``PRECISION`` digits.

    genai-prices adds ``rate * count / per`` over the priced units, each count at most
    the largest of the step's counts. Raises :class:`_NotAffine` for a price with a rate
    that is not a non-negative decimal per power of ten of a known unit.
    """
    from genai_prices.types import TieredPrices

    pers = _pers()
    rates: list[tuple[int, int, int]] = []  # (coefficient, exponent, log10 per)
    for key, value in price.__dict__.items():
        if value is None:
            continue
        values = (
            [value.base, *(t.price for t in value.tiers)]
            if type(value) is TieredPrices
            else [value]
        )
        per = pers.get(key)
        if per is None or key.startswith("_"):
            raise _NotAffine  # genai-prices warns about it on every step
        digits = len(str(per)) - 1
        if per != 10**digits:
            raise _NotAffine  # per hour: a division that need not be exact
        for rate in values:
            if type(rate) is not Decimal or not rate.is_finite() or rate < 0:
                raise _NotAffine  # genai-prices rejects it
            if rate:
                _, coefficient, exponent = rate.as_tuple()
                assert isinstance(exponent, int)
                rates.append((int("".join(map(str, coefficient))), exponent, digits))
    if not rates:
        return 0, 0
    smallest = min(exponent - digits for _, exponent, digits in rates)
    # A product ``rate * count`` has the rate's digits and the count's; the sum of all
    # ``rate * count / per``, in units of 10**smallest, is at most ``count * weight``.
    products = max(coefficient for coefficient, _, _ in rates)
    weight = sum(c * 10 ** (exponent - digits - smallest) for c, exponent, digits in rates)
    # Twice the sum: a coefficient here is one measured figure less another.
    return smallest, max(products, 2 * weight)


@cache
def _pers() -> dict[str, int]:
    """genai-prices' price keys and the quantity each rate is for (a million tokens…)."""
    from genai_prices.data_units import unit_data

    return {str(unit["price_key"]): int(unit["per"]) for unit in unit_data.values()}


def _scaled(value: Decimal, exponent: int) -> int:
    """``value`` in units of ``10**exponent``; :class:`_NotAffine` if not a whole number
    of them (genai-prices rounded)."""
    sign, digits, value_exponent = value.as_tuple()
    assert isinstance(value_exponent, int)
    number: int = int("".join(map(str, digits))) if digits else 0
    shift = value_exponent - exponent
    if shift >= 0:
        number *= 10**shift
    else:
        number, rest = divmod(number, 10**-shift)
        if rest:
            raise _NotAffine
    return -number if sign else number
