"""Agents: a role, a system prompt, a conversation history, and one call to the model.

    agent = WriterAgent(client=mas.make_client())
    draft = agent.run(write_task(...))     # calls client.messages.create, keeps both turns
    agent.reset()                          # forgets the conversation

Every model call runs the hooks of `mas.hooks` before and after it, so tracing and budgets
(notebooks 07, 09) plug in there and no agent code changes. Adding a
specialist is one prompt in `mas.prompts.SYSTEM_PROMPTS` and a two-line subclass.

A reply that is empty, refused, or cut off at `max_tokens` raises `AgentReplyError`, not an
`IndexError` three steps later; the failed turn is not kept in the history.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anthropic
from anthropic.types import Message

from mas.client import default_model, make_client, text_of, usage_of
from mas.hooks import before_call
from mas.prompts import SYSTEM_PROMPTS, reask_task, validate_task
from mas.contracts import ContractError, ask_structured
from mas.schemas import Usage, ValidationResult

DEFAULT_MAX_TOKENS = 2048
VALIDATION_ATTEMPTS = 3  # the first answer plus two re-asks with the error fed back


class AgentReplyError(RuntimeError):
    """A reply an agent cannot use. `kind`: empty | refusal | max_tokens | invalid."""

    def __init__(self, agent: str, kind: str, message: str, reply: str = ""):
        super().__init__(f"{agent}: {message}")
        self.agent, self.kind, self.reply = agent, kind, reply


class BaseAgent:
    role: ClassVar[str] = "assistant"

    def __init__(self, role: str | None = None, client: anthropic.Anthropic | None = None, model: str | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, *, system_prompt: str | None = None,
                 async_client: anthropic.AsyncAnthropic | None = None, cache_system_prompt: bool = False,
                 name: str | None = None):
        self.role = role or self.role
        if system_prompt is None and self.role not in SYSTEM_PROMPTS:
            raise ValueError(f"no system prompt for role {self.role!r}: pass system_prompt=..., or add it to "
                             f"mas.prompts.SYSTEM_PROMPTS (known roles: {', '.join(SYSTEM_PROMPTS)})")
        self.system_prompt = system_prompt if system_prompt is not None else SYSTEM_PROMPTS[self.role]
        self.name = name or self.role.capitalize()
        self.model = model or default_model()
        self.max_tokens = max_tokens
        self.cache_system_prompt = cache_system_prompt
        self.history: list[dict[str, Any]] = []
        self.usage = Usage()
        self.last_message: Message | None = None
        self._client, self._async_client = client, async_client

    @property
    def client(self) -> anthropic.Anthropic:
        if self._client is None:
            self._client = make_client()
        return self._client

    @property
    def async_client(self) -> anthropic.AsyncAnthropic:
        if self._async_client is None:
            self._async_client = make_client(asynchronous=True)
        return self._async_client

    def run(self, task: str) -> str:
        """Send `task` (with the history so far) and return the reply's text; both turns are kept."""
        request = self._request(task)
        done = before_call(self, request)  # tracing, budgets (mas.hooks); a hook may refuse the call
        try:
            message = self.client.messages.create(**request)
        except BaseException as err:
            done(None, err)
            raise
        done(message, None)
        return self._keep(task, message)

    async def arun(self, task: str) -> str:
        """`run` on the async client, for agents that work in parallel."""
        request = self._request(task)
        done = before_call(self, request)  # tracing, budgets (mas.hooks); a hook may refuse the call
        try:
            message = await self.async_client.messages.create(**request)
        except BaseException as err:
            done(None, err)
            raise
        done(message, None)
        return self._keep(task, message)

    def reset(self) -> None:
        """Forget the conversation (the usage so far is kept)."""
        self.history.clear()

    def _request(self, task: str) -> dict[str, Any]:
        system: Any = self.system_prompt
        if self.cache_system_prompt:
            system = [{"type": "text", "text": self.system_prompt, "cache_control": {"type": "ephemeral"}}]
        return {"model": self.model, "max_tokens": self.max_tokens, "system": system,
                "messages": [*self.history, {"role": "user", "content": task}]}

    def _keep(self, task: str, message: Message) -> str:
        self.last_message = message
        self.usage.add(usage_of(message))
        text = text_of(message)
        if message.stop_reason == "refusal":
            raise AgentReplyError(self.name, "refusal", "the model refused this task", text)
        if message.stop_reason == "max_tokens":
            raise AgentReplyError(self.name, "max_tokens", f"the reply was cut off at max_tokens={self.max_tokens}; "
                                  "raise max_tokens or ask for less", text)
        if not text.strip():
            kinds = [block.type for block in message.content] or ["no content blocks"]
            raise AgentReplyError(self.name, "empty", f"the reply had no text ({', '.join(kinds)})", text)
        self.history += [{"role": "user", "content": task}, {"role": "assistant", "content": text}]
        return text


class ResearcherAgent(BaseAgent):
    role = "researcher"


class WriterAgent(BaseAgent):
    role = "writer"


class ValidatorAgent(BaseAgent):
    role = "validator"

    def review(self, research: str, draft: str, attempts: int = VALIDATION_ATTEMPTS) -> ValidationResult:
        """The verdict on a draft, read strictly (`mas.contracts`); an unreadable answer is re-asked
        with the error, at most `attempts` answers in all, then `AgentReplyError(kind="invalid")`.

        Each review starts from an empty history, so a cycle's input does not grow with the last one's.
        """
        try:
            return ask_structured(self, validate_task(research, draft), ValidationResult, attempts, reask_task)
        except ContractError as err:
            raise AgentReplyError(self.name, "invalid", f"no valid verdict after {len(err.reasons)} answers; "
                                  f"last: {err.reasons[-1]}") from None
