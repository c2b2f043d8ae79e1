"""A fault plan: which offline calls fail, and how, so failure handling can be shown on demand.

    Fault("overloaded", call=1)              the 1st request gets a 529
    Fault("rate_limit", times=2)             the next two requests get a 429
    Fault("fenced_json", role="validator")   the validator's first reply comes in ```json fences
    Fault("timeout", role="writer", times=None)   every writer request times out

Calls are the HTTP requests to /v1/messages, counted from 1 per transport, so the SDK's own
retries count as calls: `[Fault("overloaded", call=1), Fault("overloaded", call=2)]` makes one
`messages.create` take three attempts. Errors carry `retry-after-ms` so retries are quick.

The same plan can come from the environment for a demo: `MAS_FAULTS="overloaded@1,fenced_json@validator"`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mas.errors import FAULTS

ROLES = ("researcher", "writer", "validator")  # the roles the offline model recognises (roles.detect_role)

# kind -> (HTTP status, API error type) for faults that are HTTP errors
HTTP_FAULTS = {
    "rate_limit": (429, "rate_limit_error"),
    "overloaded": (529, "overloaded_error"),
    "server_error": (500, "api_error"),
    "bad_request": (400, "invalid_request_error"),
}
# faults that change the reply rather than fail the request
REPLY_FAULTS = ("malformed_json", "fenced_json", "prose_json", "truncate", "refusal", "empty")
KINDS = tuple(FAULTS)  # each names the failure it makes, in mas.errors' vocabulary (FAULTS[kind])


@dataclass
class Fault:
    """One planned fault. `call` pins it to one request number; otherwise it hits the next
    `times` requests (of `role`, if given); `times=None` means every one."""

    kind: str
    call: int | None = None
    role: str | None = None
    times: int | None = 1
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            known = ", ".join(f"{fault} ({FAULTS[fault]})" if FAULTS[fault] != fault else fault for fault in KINDS)
            raise ValueError(f"unknown fault kind {self.kind!r}; known kinds (and the failure each makes): {known}")

    def matches(self, call: int, role: str | None) -> bool:
        if self.call is not None:
            return call == self.call
        if self.role is not None and self.role != role:
            return False
        return self.times is None or self.fired < self.times


class FaultPlan:
    """An ordered list of faults; the first that matches a request fires."""

    def __init__(self, faults: list[Fault] | None = None):
        self.faults = list(faults or [])

    @classmethod
    def from_env(cls) -> FaultPlan:
        from mas.settings import settings

        return cls.parse(settings().faults)

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """`"overloaded@1,timeout@writer,rate_limit*2"`: kind, then @call or @role, then *times.

        >>> [(f.kind, f.call, f.role, f.times) for f in FaultPlan.parse("overloaded@1,refusal@writer*2").faults]
        [('overloaded', 1, None, 1), ('refusal', None, 'writer', 2)]
        """
        faults = []
        for item in filter(None, (s.strip() for s in spec.split(","))):
            item, _, times = item.partition("*")
            kind, _, target = item.partition("@")
            if times and not times.strip().isdigit():
                raise ValueError(f"fault {item!r}: *times must be a whole number, got {times!r}")
            fault = Fault(kind.strip(), times=int(times) if times else 1)
            target = target.strip()
            if target.isdigit():
                fault.call = int(target)
            elif target and target not in ROLES:
                raise ValueError(f"fault {item!r}: @{target} is neither a call number nor a role "
                                 f"({', '.join(ROLES)})")
            elif target:
                fault.role = target
            faults.append(fault)
        return cls(faults)

    def take(self, call: int, role: str | None) -> str | None:
        """The kind of fault this request gets, if any (and count it as fired)."""
        for fault in self.faults:
            if fault.matches(call, role):
                fault.fired += 1
                return fault.kind
        return None


def damage(text: str, kind: str) -> str:
    """A reply's text as the fault would leave it (for the reply-changing kinds).

    >>> damage('{"approved": true}', "fenced_json")
    '```json\\n{"approved": true}\\n```'
    """
    damaged = {"malformed_json": text[: max(1, len(text) // 2)], "fenced_json": f"```json\n{text}\n```",
               "prose_json": f"Here is my assessment:\n\n{text}\n\nLet me know if you need anything else.",
               "refusal": "I can't help with that request.", "empty": ""}
    return damaged.get(kind, text)
