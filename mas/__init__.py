"""mas: a small multi-agent system on the official Anthropic SDK, built up by the course's notebooks.

    import mas
    result = mas.Orchestrator().run("How vector databases enable semantic search")

The core (client factory, agents, orchestrator, memory) is imported here; anything heavier or
optional (Redis, widgets, tracing, parallel helpers) is imported from its own module when used,
so `import mas` costs little more than `import anthropic`.
"""

from mas.agents import AgentReplyError, BaseAgent, ResearcherAgent, ValidatorAgent, WriterAgent
from mas.budget import Budget, BudgetExceeded
from mas.contracts import ContractError, ReplyError, ask_structured, parse_reply, parse_structured
from mas.failures import (AgentFailed, AgentFailure, AwaitingHuman, CircuitBreaker, CircuitOpen, Escalate, Fallback,
                          HumanRejected, Resilient, Retry, Skip)
from mas.hierarchy import DepthLimitExceeded, ResearchTeam
from mas.human import APPROVE, REJECT, Decision, ask_human
from mas.llm import make_async_client, make_client, text_of, usage_of
from mas.memory import PersistentMemory, RedisMemory, SQLiteMemory
from mas.orchestrator import Orchestrator
from mas.pricing import cost, set_price
from mas.parallel import ParallelResearcher, Subtask, SubtaskError, arun_parallel, run_parallel
from mas.replay import NotInRecording, RecordingTransport, ReplayTransport, record_client, replay_client
from mas.schemas import RunResult, ValidationResult
from mas.tracing import Span, Tracer, load_jsonl

__all__ = [
    "make_client", "make_async_client", "text_of", "usage_of",
    "BaseAgent", "ResearcherAgent", "WriterAgent", "ValidatorAgent", "AgentReplyError",
    "SQLiteMemory", "PersistentMemory", "RedisMemory",
    "Orchestrator", "RunResult", "ValidationResult",
    "ContractError", "ReplyError", "ask_structured", "parse_reply", "parse_structured",
    "ParallelResearcher", "Subtask", "SubtaskError", "arun_parallel", "run_parallel",
    "Resilient", "Retry", "Skip", "Fallback", "Escalate", "CircuitBreaker", "AgentFailure", "AgentFailed",
    "CircuitOpen", "HumanRejected", "AwaitingHuman", "Decision", "ask_human", "APPROVE", "REJECT",
    "Tracer", "Span", "load_jsonl", "cost", "set_price",
    "Budget", "BudgetExceeded", "ResearchTeam", "DepthLimitExceeded",
    "RecordingTransport", "ReplayTransport", "NotInRecording", "record_client", "replay_client",
]
