"""What a call costs: a per-model price table, and the cost of a reply's `usage`.

Prices are US dollars per million tokens (MTok), one row per model, in the four categories of
the reply's `usage` the API bills: input, 5-minute cache writes (1.25x the input rate), cache
hits (0.1x on most models) and output. The four are disjoint (a token written to the cache is
not also billed as input), so a call's cost is their sum. A model with no row has no cost:
`None`, shown as "unknown", never a guess from a similar model's price. Override or add prices
with `set_price(...)` (for every caller) or `Tracer(prices={...})` (for one trace).

The Message Batches API bills every category at half these rates (`cost(..., batch=True)`;
`mas.batches`), prompt-caching multipliers included.

Simplified on purpose: the 1-hour cache-write rate (2x input; `mas` agents use the default
5-minute cache), fast mode, data-residency multipliers, long-context
surcharges and tool-use fees are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

PER = 1_000_000  # prices are per million tokens
CACHE_WRITE_MULTIPLIER = 1.25  # 5-minute cache writes, per Anthropic's prompt-caching pricing
CACHE_READ_MULTIPLIER = 0.1  # cache hits on most models (some newer ones list less: see the table)
BATCH_DISCOUNT = 0.5  # the Message Batches API: 50% off input and output (pricing page, "Batch processing")


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens for one model."""

    input: float
    output: float
    cache_write: float  # 5-minute cache writes
    cache_read: float  # cache hits and refreshes


def price(input: float, output: float, cache_write: float | None = None, cache_read: float | None = None) -> Price:
    """A `Price`, with the cache rates derived from the input rate when not given.

    >>> price(3, 15)
    Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.3)
    """
    if any(rate is not None and rate < 0 for rate in (input, output, cache_write, cache_read)):
        raise ValueError(f"prices must be >= 0 dollars per million tokens, got input={input}, output={output}, "
                         f"cache_write={cache_write}, cache_read={cache_read}")
    return Price(float(input), float(output),
                 float(cache_write) if cache_write is not None else round(input * CACHE_WRITE_MULTIPLIER, 6),
                 float(cache_read) if cache_read is not None else round(input * CACHE_READ_MULTIPLIER, 6))


# Source: Anthropic's pricing page, https://platform.claude.com/docs/en/about-claude/pricing
# ("Model pricing": base input, 5m cache writes, cache hits and refreshes, output), and the model
# overview pages at https://platform.claude.com/docs/en/models/<model>/overview for Opus 5.5 and
# Sonnet 5. Checked on 2026-11-25. Prices change: check the page before you quote a figure.
# Left out on purpose (cost shows as unknown until you set_price them): claude-sonnet-5-5 (its
# cache-hit rate differs between the copies of the page we could read), claude-haiku-5-5 (priced
# in two bands by prompt length), and claude-fable-5-2, claude-mythos-5-2 and
# claude-mythos-preview (no published price we could confirm).
PRICES: dict[str, Price] = {
    # Fable / Mythos 5.1 list cache hits at $0.25 (0.025x input), not the usual 0.1x
    "claude-fable-5-1": price(10, 50, 12.50, 0.25),
    "claude-mythos-5-1": price(10, 50, 12.50, 0.25),
    "claude-fable-5": price(10, 50, 12.50, 1.00),
    "claude-mythos-5": price(10, 50, 12.50, 1.00),
    "claude-opus-5-5": price(4, 20, 5.00, 0.20),  # cache hits at 0.05x input
    "claude-opus-5": price(5, 25, 6.25, 0.50),
    "claude-opus-4-8": price(5, 25, 6.25, 0.50),
    "claude-opus-4-7": price(5, 25, 6.25, 0.50),
    "claude-opus-4-6": price(5, 25, 6.25, 0.50),
    "claude-opus-4-5": price(5, 25, 6.25, 0.50),
    "claude-opus-4-5-20251101": price(5, 25, 6.25, 0.50),
    "claude-sonnet-5": price(2, 10, 2.50, 0.20),
    "claude-sonnet-4-6": price(3, 15, 3.75, 0.30),
    "claude-sonnet-4-5": price(3, 15, 3.75, 0.30),
    "claude-sonnet-4-5-20250929": price(3, 15, 3.75, 0.30),
    "claude-haiku-4-5": price(1, 5, 1.25, 0.10),
    "claude-haiku-4-5-20251001": price(1, 5, 1.25, 0.10),
}


def set_price(model: str, *, input: float, output: float, cache_write: float | None = None,
              cache_read: float | None = None) -> Price:
    """Add or replace `model`'s price in the shared table (dollars per million tokens, as `price` takes them)."""
    if not model:
        raise ValueError("set_price needs a model id")
    PRICES[model] = price(input, output, cache_write, cache_read)
    return PRICES[model]


def price_of(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `model`: from `prices` first (an override), then the shared table; None if unknown."""
    return prices[model] if prices is not None and model in prices else PRICES.get(model)


def tokens_of(usage: Any) -> tuple[int, int, int, int]:
    """(input, output, cache write, cache read) tokens of a usage dict, `mas.Usage` or SDK `Usage`.

    >>> tokens_of({"input_tokens": 10, "output_tokens": 2})
    (10, 2, 0, 0)
    """
    get = usage.get if isinstance(usage, Mapping) else lambda key, default=0: getattr(usage, key, default)
    return (get("input_tokens", 0) or 0, get("output_tokens", 0) or 0,
            get("cache_creation_input_tokens", 0) or 0, get("cache_read_input_tokens", 0) or 0)


def cost(model: str, usage: Any, prices: Mapping[str, Price] | None = None, *, batch: bool = False) -> float | None:
    """Dollars for `usage` on `model`, or None when the model has no known price; `batch`: sent through
    the Message Batches API, at half the price.

    >>> cost("claude-opus-4-6", {"input_tokens": 1000, "output_tokens": 200})
    0.01
    >>> cost("claude-opus-4-6", {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 2000})
    0.001
    >>> cost("claude-opus-4-6", {"input_tokens": 1000, "output_tokens": 200}, batch=True)
    0.005
    >>> cost("no-such-model", {"input_tokens": 1000}) is None
    True
    """
    rate = price_of(model, prices)
    if rate is None:
        return None
    inp, out, write, read = tokens_of(usage)
    dollars = (inp * rate.input + out * rate.output + write * rate.cache_write + read * rate.cache_read) / PER
    return dollars * BATCH_DISCOUNT if batch else dollars


def uncached_cost(model: str, usage: Any, prices: Mapping[str, Price] | None = None) -> float | None:
    """What the same tokens would cost with no prompt caching: every input token at the input rate.

    >>> uncached_cost("claude-opus-4-6", {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 2000})
    0.01
    """
    inp, out, write, read = tokens_of(usage)
    return cost(model, {"input_tokens": inp + write + read, "output_tokens": out}, prices)


def dollars(value: float | None, *, exact: bool = False) -> str:
    """Dollars: to four decimals (a call costs fractions of a cent), or `exact` to the millionth
    without trailing zeros (a budget's limits); "unknown" when there is no price.

    >>> dollars(0.00123), dollars(None), dollars(0.000545, exact=True), dollars(12, exact=True)
    ('$0.0012', 'unknown', '$0.000545', '$12')
    """
    if value is None:
        return "unknown"
    return "$" + f"{value:,.6f}".rstrip("0").rstrip(".") if exact else f"${value:.4f}"
