"""A budget for a whole tree of agents: calls, tokens and cost, refused *before* a call is sent.

    budget = Budget(max_calls=20, max_tokens=50_000, max_cost=0.50)
    with budget:                      # a hook (mas.hooks) on every agent call inside
        orchestrator.run(topic)       # the call that could overshoot raises BudgetExceeded
    budget.spent                      # Spent(calls=..., tokens=..., cost=...)

Before each call the budget works out what the call could use at most: one call, its input
tokens plus `max_tokens` (the most the reply can be), and the price of both. If that worst case,
added to what is spent and to what calls still in flight have reserved, passes a limit, the call
is refused: `BudgetExceeded` (a `RunStopped`, status "budget_exceeded"), and nothing is sent.
Otherwise the worst case is *reserved*; when the reply comes back the reservation is swapped for
the real usage ("reserve, then settle"), so concurrent calls, async or threaded, cannot jointly
overshoot: each one's worst case is counted while it is in flight.

Counting the input (a choice, made explicit by `input_count=`):
- "estimate" (the default): `mas.offline.tokens.count_request`, ceil(chars/4) per block plus 3
  per message, computed locally. It is exactly what the offline model bills, so offline budgets
  are exact to the token; live, Claude's tokenizer differs (code and non-English text take more
  tokens), so the refusal is approximate there. `spent` always records the real usage.
- "api": `agent.count_tokens`, the API's count through the agent's own (sync) client: exact live, but
  one more request before every model call (free of charge, separately rate-limited, a network
  round trip, and a blocking one inside async code). Choose it live when the limit must hold. A
  server without that endpoint (a gateway's 404) is one note on stderr, then the estimate above.
A budget with only `max_calls` counts nothing.

Cost comes from `mas.pricing.cost(model, usage)`. A model without a known price cannot be bounded
by money, so under `max_cost` its call is refused with that reason rather than guessed.

Simplified on purpose: a "call" is one agent call (one `messages.create`, however many times the
SDK retries it underneath); a call that fails after it was sent still counts as a call, with no
tokens. Cache writes in the worst case are priced as 5-minute writes (1.25x input). Install a
budget with `with budget:` (or `call_hook(budget)`); budgets may nest (a team's inside the tree's),
each counting the calls made inside it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from mas.client import usage_of
from mas.contracts import TOKEN_FIELDS
from mas.errors import BudgetExceeded, RunStopped
from mas.hooks import After, counting, install, installed, uninstall
from mas.pricing import cost as price_cost
from mas.pricing import dollars

INPUT_COUNTS = ("estimate", "api")
usd = partial(dollars, exact=True)  # a budget's figures, to the millionth of a dollar
Price = Callable[[str, dict], "float | None"]


@dataclass(frozen=True)
class Spent:
    """Calls, tokens (input, cache and output together) and cost in dollars (None: unknown)."""

    calls: int = 0
    tokens: int = 0
    cost: float | None = 0.0

    def __add__(self, other: Spent) -> Spent:
        cost = None if self.cost is None or other.cost is None else self.cost + other.cost
        return Spent(self.calls + other.calls, self.tokens + other.tokens, cost)

    def __sub__(self, other: Spent) -> Spent:
        cost = None if self.cost is None or other.cost is None else self.cost - other.cost
        return Spent(self.calls - other.calls, self.tokens - other.tokens, cost)


def total_tokens(usage: dict[str, int]) -> int:
    """Every token a call used: input, cache writes, cache reads and output.

    >>> total_tokens({"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 5})
    105
    """
    return sum(usage.get(k, 0) for k in TOKEN_FIELDS)


class Budget:
    """Limits for every agent call made inside `with budget:` (None: no limit on that measure)."""

    def __init__(self, max_calls: int | None = None, max_tokens: int | None = None, max_cost: float | None = None,
                 *, input_count: str = "estimate", price: Price | None = None):
        for name, value in (("max_calls", max_calls), ("max_tokens", max_tokens), ("max_cost", max_cost)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a number >= 0 or None (no limit), got {value!r}")
        if input_count not in INPUT_COUNTS:
            raise ValueError(f"input_count must be one of {INPUT_COUNTS}, got {input_count!r}")
        self.max_calls, self.max_tokens, self.max_cost = max_calls, max_tokens, max_cost
        self.input_count = input_count
        self.price = price or price_cost
        self._spent, self._reserved = Spent(), Spent()
        self._lock = threading.Lock()  # check-and-reserve is one step, across threads too

    def __enter__(self) -> Budget:
        if self in installed():
            raise RuntimeError("this budget is already active here; nest another Budget for a part of the work "
                               "(each counts the calls made inside it), not the same one twice")
        install(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        uninstall(self)

    @property
    def spent(self) -> Spent:
        with self._lock:
            return self._spent

    @property
    def reserved(self) -> Spent:
        """The worst cases of the calls in flight now."""
        with self._lock:
            return self._reserved

    def summary(self) -> str:
        s = self.spent
        return (f"{s.calls} call(s){_of(self.max_calls)}, {s.tokens:,} tokens{_of(self.max_tokens, ',')}, "
                f"cost {usd(s.cost)}{'' if self.max_cost is None else ' of ' + usd(self.max_cost)}")

    def __repr__(self) -> str:
        return f"Budget(max_calls={self.max_calls}, max_tokens={self.max_tokens}, max_cost={self.max_cost}): " \
               f"{self.summary()}"

    def worst_case(self, agent: Any, request: dict) -> Spent:
        """What one call could use at most: 1 call, input + max_tokens tokens, and their price
        (cost None when the model has no known price; 0.0 when no max_cost asks for it)."""
        if self.max_tokens is None and self.max_cost is None:
            return Spent(1, 0, 0.0)  # nothing to count: no count_tokens request, no estimate
        input_tokens = self.count_input(agent, request)
        output_tokens = request.get("max_tokens", 0)
        cost: float | None = 0.0
        if self.max_cost is not None:
            # subtle: with cache_control, the input may be billed as a cache write (1.25x): assume it is
            key = "cache_creation_input_tokens" if "cache_control" in str(request) else "input_tokens"
            cost = self.price(request["model"], {key: input_tokens, "output_tokens": output_tokens})
        return Spent(1, input_tokens + output_tokens, cost)

    def count_input(self, agent: Any, request: dict) -> int:
        if self.input_count == "api":
            return agent.count_tokens(request=request)  # through the agent's one call site, like every request
        from mas.offline.tokens import count_request

        return count_request(request)

    def __call__(self, agent: Any, request: dict) -> After | None:
        if counting(request):
            return None  # a token count is free and sends nothing to the model: not a call to budget
        name = getattr(agent, "name", type(agent).__name__)
        need = self.worst_case(agent, request)  # outside the lock: "api" counting is a request
        with self._lock:
            self._refuse_if_over(name, request["model"], need)
            self._reserved += need
        return lambda message, error: self._settle(need, request["model"], message, error)

    def _refuse_if_over(self, name: str, model: str, need: Spent) -> None:
        spent, held = self._spent, self._reserved
        if self.max_calls is not None and spent.calls + held.calls + 1 > self.max_calls:
            raise BudgetExceeded(
                f"budget exceeded: {name}'s call would be call {spent.calls + held.calls + 1} but max_calls="
                f"{self.max_calls} ({spent.calls} spent, {held.calls} in flight); it was not sent",
                limit="calls", maximum=self.max_calls, spent=spent.calls, reserved=held.calls, needed=1, agent=name)
        if self.max_tokens is not None and spent.tokens + held.tokens + need.tokens > self.max_tokens:
            raise BudgetExceeded(
                f"budget exceeded: {name}'s call could use {need.tokens:,} tokens (input + max_tokens) but "
                f"{spent.tokens:,} of max_tokens={self.max_tokens:,} are spent ({held.tokens:,} more reserved "
                f"in flight); it was not sent", limit="tokens", maximum=self.max_tokens, spent=spent.tokens,
                reserved=held.tokens, needed=need.tokens, agent=name)
        if self.max_cost is not None:
            if need.cost is None or spent.cost is None:
                raise BudgetExceeded(
                    f"budget exceeded: no known price for model {model!r}, so max_cost={usd(self.max_cost)} cannot "
                    f"bound {name}'s call; it was not sent (give its price to mas.pricing, or drop max_cost)",
                    limit="cost", maximum=self.max_cost, spent=spent.cost or 0.0, reserved=held.cost or 0.0,
                    needed=None, agent=name)
            if spent.cost + held.cost + need.cost > self.max_cost:
                raise BudgetExceeded(
                    f"budget exceeded: {name}'s call could cost {usd(need.cost)} but {usd(spent.cost)} of "
                    f"max_cost={usd(self.max_cost)} is spent ({usd(held.cost)} more reserved in flight); "
                    "it was not sent", limit="cost", maximum=self.max_cost, spent=spent.cost, reserved=held.cost,
                    needed=need.cost, agent=name)

    def _settle(self, need: Spent, model: str, message: Any, error: BaseException | None) -> None:
        if message is not None:
            usage = usage_of(message)
            used = Spent(1, total_tokens(usage), self.price(model, usage))  # None (unknown) poisons the total
        elif isinstance(error, RunStopped):
            used = Spent()  # refused by another hook: never sent
        else:
            used = Spent(1, 0, 0.0)  # sent and failed: a call, billed nothing
        with self._lock:
            self._reserved -= need
            self._spent += used


def _of(limit: float | None, fmt: str = "") -> str:
    return "" if limit is None else f" of {limit:{fmt}}"
