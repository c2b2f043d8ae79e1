"""A circuit breaker: after N failed calls in a row, stop calling that agent at all.

    breaker = CircuitBreaker(max_failures=3)
    writer = Resilient(WriterAgent(client=client), [Fallback(model="claude-haiku-4-5")], breaker=breaker)

Retrying a service that is down only adds load and waiting. The breaker counts consecutive
failed calls of the agent it guards; at `max_failures` it opens and every further call to that
agent is refused at once, with no request sent. `mas.failures.Resilient` asks it before each call
(`allow`) and tells it how each ended (`record`); the policies that don't need the agent
(fallback, skip, escalate) still run, and if none recovers, `CircuitOpen` stops the run
("circuit_open"). A success closes it.

Separate from the policies because it is a small state machine of its own (closed, open,
half-open), testable with no agent and no model. `mas.failures` re-exports both names.

Simplified on purpose: the breaker's half-open trial comes after a *count* of refused calls
(`reset_after`), not a cool-down time, so it is deterministic and testable; production breakers
usually wait N seconds.
"""

from __future__ import annotations

from mas.failure_kinds import AgentFailed, AgentFailure


class CircuitOpen(AgentFailed):
    status = "circuit_open"


class CircuitBreaker:
    """Opens after `max_failures` consecutive failures; refuses calls while open; closes on a success.

    With `reset_after=k`, after k refused calls the next one is let through as a trial
    ("half_open"): a success closes the circuit, a failure opens it again for another k.

    >>> breaker, failed = CircuitBreaker(max_failures=2), AgentFailure("Writer", "overloaded", "529", 3)
    >>> breaker.record(failed); breaker.state
    'closed'
    >>> breaker.record(failed); breaker.state, breaker.allow(), breaker.refused
    ('open', False, 1)
    >>> breaker.record(None); breaker.state, breaker.allow()
    ('closed', True)
    """

    def __init__(self, max_failures: int = 3, *, reset_after: int | None = None):
        if max_failures < 1 or (reset_after is not None and reset_after < 1):
            raise ValueError(f"max_failures and reset_after must be >= 1, got {max_failures}, {reset_after}")
        self.max_failures, self.reset_after = max_failures, reset_after
        self.failures = 0  # consecutive
        self.refused = 0  # calls refused since it opened (or since the last trial)
        self.last: AgentFailure | None = None

    @property
    def state(self) -> str:
        if self.failures < self.max_failures:
            return "closed"
        return "half_open" if self.reset_after is not None and self.refused >= self.reset_after else "open"

    def allow(self) -> bool:
        """May the next call go through? (Counts it as refused when not.)"""
        state = self.state
        if state == "open":
            self.refused += 1
        elif state == "half_open":
            self.refused = 0  # one trial; its failure re-opens the circuit for another `reset_after`
        return state != "open"

    def record(self, failure: AgentFailure | None) -> None:
        if failure is None:
            self.failures, self.refused, self.last = 0, 0, None
        else:
            self.failures, self.last = self.failures + 1, failure

    def reason(self, agent: str) -> str:
        trial = f"; a trial call goes through after {self.reset_after} refused" if self.reset_after else ""
        last = f" (last: {self.last.kind}: {self.last.message})" if self.last else ""
        return (f"circuit open: {agent} failed {self.failures} time(s) in a row{last}; "
                f"calls are refused without a request{trial}")
