"""mas: a small multi-agent system on the official Anthropic SDK, built up by the course's notebooks.

    import mas
    result = mas.Orchestrator().run("How vector databases enable semantic search")

The core (client factory, agents, contracts, orchestrator, memory) is imported here. The production
patterns (tracing, budgets, failure policies, parallel helpers, replay, Redis) load on first use,
`mas.Tracer` importing `mas.tracing` then, so `import mas` costs little more than `import anthropic`.
"""

import importlib

from mas.agents import AgentReplyError, BaseAgent, ResearcherAgent, ValidatorAgent, WriterAgent
from mas.client import make_client, record_client, replay_client, text_of, usage_of
from mas.contracts import ContractError, ReplyError, ask_structured, parse_reply, parse_structured
from mas.memory import PersistentMemory, SQLiteMemory
from mas.orchestrator import Orchestrator
from mas.schemas import RunResult, ValidationResult

_LAZY = {
    "RedisMemory": "mas.redis_memory",
    "Budget": "mas.budget", "BudgetExceeded": "mas.budget",
    "ResearchTeam": "mas.hierarchy", "DepthLimitExceeded": "mas.hierarchy",
    **dict.fromkeys(["Resilient", "Retry", "Skip", "Fallback", "Escalate", "CircuitBreaker", "AgentFailure",
                     "AgentFailed", "CircuitOpen", "HumanRejected", "AwaitingHuman"], "mas.failures"),
    **dict.fromkeys(["Decision", "ask_human", "APPROVE", "REJECT"], "mas.human"),
    **dict.fromkeys(["Tracer", "Span", "load_jsonl"], "mas.tracing"),
    "cost": "mas.pricing", "set_price": "mas.pricing",
    **dict.fromkeys(["ParallelResearcher", "Subtask", "SubtaskError", "arun_parallel", "run_parallel"], "mas.parallel"),
    "RecordingTransport": "mas.offline.record",
    **dict.fromkeys(["ReplayTransport", "NotInRecording"], "mas.offline.replay"),
}

__all__ = [
    "make_client", "record_client", "replay_client", "text_of", "usage_of",
    "BaseAgent", "ResearcherAgent", "WriterAgent", "ValidatorAgent", "AgentReplyError",
    "SQLiteMemory", "PersistentMemory",
    "Orchestrator", "RunResult", "ValidationResult",
    "ContractError", "ReplyError", "ask_structured", "parse_reply", "parse_structured",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
