"""mas: a small multi-agent system on the official Anthropic SDK, built up by the course's notebooks.

    import mas
    result = mas.Orchestrator().run("How vector databases enable semantic search")

The names a learner reaches for first; every other one lives in the module of the idea it
belongs to (`mas.tracing`, `mas.failures`, `mas.budget`, ... one per notebook). Plain imports:
only the parts with optional packages (widgets, Redis) load on use.
"""

from mas.agents import BaseAgent, ResearcherAgent, ValidatorAgent, WriterAgent
from mas.client import make_client, record_client, replay_client, text_of, usage_of
from mas.contracts import RunResult, Usage, ValidationResult, parse_reply
from mas.errors import AgentReplyError, ContractError, ReplyError, RunStopped
from mas.memory import SQLiteMemory
from mas.orchestrator import Orchestrator

__all__ = [
    "make_client", "record_client", "replay_client", "text_of", "usage_of",
    "BaseAgent", "ResearcherAgent", "WriterAgent", "ValidatorAgent",
    "Orchestrator", "SQLiteMemory",
    "RunResult", "Usage", "ValidationResult", "parse_reply",
    "AgentReplyError", "ContractError", "ReplyError", "RunStopped",
]
