"""Agents: a role, a system prompt, a conversation history, and the one place that calls the model.

    agent = WriterAgent(client=mas.make_client())
    draft = agent.run(write_task(...))              # client.messages.create; keeps both turns
    notes = agent.ask(task, Notes)                  # an answer read strictly as a pydantic model
    agent.count_tokens(task)                        # client.messages.count_tokens, nothing sent to the model
    ResearcherAgent(client=c, tools=[search])       # run() loops through tool rounds (mas.tools)
    agent.reset()                                   # forgets the conversation

Every request an agent makes (messages, structured or not, and token counts; sync or async) goes through
`BaseAgent._call`, which runs the hooks of `mas.hooks` around it, so tracing and budgets
(notebooks 07, 09) see and can refuse every one, and no other module of `mas` talks to the model.
Adding a specialist is one prompt in `mas.prompts.SYSTEM_PROMPTS` and a two-line subclass.

A reply that is empty, refused, or cut off at `max_tokens` raises `AgentReplyError`, not an
`IndexError` three steps later; the failed turn is not kept in the history. `ask` re-asks an
answer that does not fit its contract (`mas.contracts`) with the error fed back, and never fills
in a default; each re-ask is one line on stderr as it happens (`mas.progress`).

`Agent` is what the rest of `mas` needs of an agent (the orchestrator, failure policies, parallel
runs and teams): a `name`, a `role` ("validator" marks a validator, which also has `review`), its
`usage`, `reset`, and `run` / `arun`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Protocol, Sequence, TypeVar, runtime_checkable

import anthropic
import pydantic
from anthropic.types import Message, MessageTokensCount

from mas.client import default_model, make_client, text_of, usage_of
from mas.contracts import TOKEN_FIELDS, Usage, ValidationResult, parse_reply
from mas.errors import AgentReplyError, ContractError, FailureKind, ReplyError, names_model, not_served
from mas.hooks import before_call
from mas.progress import note, reask
from mas.prompts import SYSTEM_PROMPTS, reask_task, validate_task

T = TypeVar("T", bound=pydantic.BaseModel)
DEFAULT_MAX_TOKENS = 2048
ASK_ATTEMPTS = VALIDATION_ATTEMPTS = 3  # the first answer plus two re-asks with the error fed back
_UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)  # what the SDK raises for such a 200 body
COUNTABLE = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config")  # count_tokens' body


@runtime_checkable
class Agent(Protocol):
    """What every agent-like class offers (BaseAgent, Resilient, ResearchTeam, ParallelResearcher)."""

    name: str
    role: str  # "validator" for one that also has `review(research, draft, attempts)`

    @property
    def usage(self) -> Usage: ...

    def reset(self) -> None: ...

    def run(self, task: str) -> str: ...


def is_validator(agent: Any) -> bool:
    """A validator is recognised by its role."""
    return getattr(agent, "role", None) == "validator"


class BaseAgent:
    role: ClassVar[str] = "assistant"

    def __init__(self, role: str | None = None, client: anthropic.Anthropic | None = None, model: str | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, *, system_prompt: str | None = None,
                 async_client: anthropic.AsyncAnthropic | None = None, cache_system_prompt: bool = False,
                 name: str | None = None, tools: Sequence[Any] = (), max_tool_rounds: int | None = None):
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
        # tools (mas.tools): SDK tool objects (`@anthropic.beta_tool`) or plain functions, wrapped the same way
        self.tools: list[Any] = []
        self.max_tool_rounds = max_tool_rounds
        if tools:
            from mas.tools import MAX_TOOL_ROUNDS, as_tools

            self.tools = as_tools(tools)
            self.max_tool_rounds = MAX_TOOL_ROUNDS if max_tool_rounds is None else max_tool_rounds

    # Subtle: an agent given one kind of client never builds the other kind itself: a default client
    # could talk to another server than the one it was given (the live API, for an offline agent).
    @property
    def client(self) -> anthropic.Anthropic:
        if self._client is None:
            if self._async_client is not None:
                raise ValueError(f"{self.name} has only an async client: use `await agent.arun(task)`, or pass "
                                 "client= as well (make_client(transport=t) beside make_client(transport=t, "
                                 "asynchronous=True))")
            self._client = make_client()
        return self._client

    @property
    def async_client(self) -> anthropic.AsyncAnthropic:
        if self._async_client is None:
            if self._client is not None:
                raise ValueError(f"{self.name} has only a sync client: use `agent.run(task)`, or pass async_client= "
                                 "as well (make_client(transport=t, asynchronous=True) beside make_client(transport=t))")
            self._async_client = make_client(asynchronous=True)
        return self._async_client

    def with_model(self, model: str) -> BaseAgent:
        """A copy of this agent on another model: same client and prompt, its own usage and name."""
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__, model=model, usage=Usage(), history=list(self.history),
                             last_message=None, name=f"{self.name} ({model})")
        return twin

    # ------------------------------------------------------------------ the verbs

    def run(self, task: str) -> str:
        """Send `task` (with the history so far) and return the reply's text; both turns are kept. With
        `tools`, every round of tool calls is a call of its own, and the history keeps them all (mas.tools)."""
        if not self.tools:
            return self._keep(task, self._call("create", self._request(task)))
        rounds = self._tool_rounds(task)
        while not rounds.take(message := self._call("create", rounds.request)):
            pass
        return self._keep(task, message, rounds.turns)

    async def arun(self, task: str) -> str:
        """`run` on the async client, for agents that work in parallel."""
        if not self.tools:
            return self._keep(task, await self._acall(self._request(task)))
        rounds = self._tool_rounds(task)
        while not await rounds.atake(message := await self._acall(rounds.request)):
            pass
        return self._keep(task, message, rounds.turns)

    def _tool_rounds(self, task: str) -> Any:
        from mas.tools import ToolRounds

        return ToolRounds(self, self._request(task), self.tools, self.max_tool_rounds)

    def ask(self, task: str, schema: type[T], attempts: int = ASK_ATTEMPTS, *, structured: bool = False) -> T:
        """Ask `task` and read the answer as `schema`; an answer that does not fit is re-asked with
        the error, at most `attempts` answers in all, then `ContractError` (never a default).

        Plain (`structured=False`): the reply must be exactly the JSON object (`parse_reply`).
        `structured=True`: the API's structured outputs constrain the JSON to the schema (the request
        `messages.parse(output_format=schema)` sends: `output_config` with the schema as
        `anthropic.transform_schema` makes it); the reply is still read strictly, its stop reason
        first, and its tokens are counted whether it fits or not (inside `messages.parse` a reply that
        fails to parse is lost with its usage). Starts from an empty history, so a repeated question
        costs the same each time.
        """
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.reset()
        reasons: list[str] = []
        kinds: list[FailureKind] = []
        for _ in range(attempts):
            try:
                text = self._keep(task, self._call("create", self._request(task, schema if structured else None)))
                return parse_reply(text, schema, self.last_message.stop_reason if self.last_message else None)
            except (ReplyError, AgentReplyError) as err:
                if isinstance(err, AgentReplyError) and err.kind not in ("refusal", "max_tokens", "empty"):
                    raise
                reasons.append(err.reason)
                kinds.append(err.kind if isinstance(err, AgentReplyError) else "invalid")
                reask(self.name, err.reason, len(reasons), attempts)  # the line a room sees (mas.progress)
                if isinstance(err, AgentReplyError):
                    # the unusable answer stays in the conversation, so the re-ask reads naturally
                    self.history += [{"role": "user", "content": task},
                                     {"role": "assistant", "content": err.reply or "(an answer that did not fit)"}]
            task = reask_task(reasons[-1], schema)
        raise ContractError(schema, reasons, kinds)

    def count_tokens(self, task: str | None = None, *, request: dict | None = None) -> int:
        """The input tokens of `task` as this agent would send it (or of a whole `request`), counted
        by the API's `count_tokens`: nothing is generated, nothing is kept.

        A server without that endpoint (a gateway's 404 that does not name the model) gets one line on
        stderr, once, naming the endpoint and the server, and the count is the local estimate
        (`mas.offline.tokens.count_request`, about four characters a token) instead of a traceback."""
        if self._client is None and self._async_client is not None:
            # subtle: counting is sync (a hook runs before the call); a default client here would be
            # another server than the one this agent talks to (the live API, say, for an offline agent)
            raise ValueError(f"{self.name} has only an async client, and count_tokens needs a sync one to the same "
                             "server: pass client= as well (e.g. make_client(transport=t) beside "
                             "make_client(transport=t, asynchronous=True)), or count with input_count='estimate'")
        body = request if request is not None else self._request(task or "")
        countable = {k: v for k, v in body.items() if k in COUNTABLE}
        try:
            return self._call("count_tokens", countable).input_tokens
        except anthropic.NotFoundError as err:
            if names_model(err):  # the model is not served: that is no optional endpoint missing
                raise
            from mas.offline.tokens import count_request

            note(not_served(err, "counting locally instead (an estimate, about 4 characters a token)"))
            return count_request(countable)

    def reset(self) -> None:
        """Forget the conversation (the usage so far is kept)."""
        self.history.clear()

    # ------------------------------------------------------------------ the one call site

    def _call(self, kind: str, request: dict[str, Any]) -> Any:
        """The only place `mas` sends a request to the model: the hooks around `client.messages.<kind>`.
        A 200 reply that is not what `kind` returns raises `AgentReplyError` of kind "invalid" (`_unreadable`)."""
        done = before_call(self, request)  # tracing, budgets (mas.hooks); a hook may refuse the call
        try:
            try:  # subtle: a plain try, not a context manager: this runs around every call
                result = getattr(self.client.messages, kind)(**request)
            except _UNDECODABLE as err:
                raise self._undecodable(kind, err) from None
            self._check_shape(kind, result)
        except BaseException as err:
            done(None, err)
            raise
        done(result, None)
        return result

    async def _acall(self, request: dict[str, Any]) -> Message:
        done = before_call(self, request)
        try:
            try:
                message = await self.async_client.messages.create(**request)
            except _UNDECODABLE as err:
                raise self._undecodable("create", err) from None
            self._check_shape("create", message)
        except BaseException as err:
            done(None, err)
            raise
        done(message, None)
        return message

    def _undecodable(self, kind: str, err: BaseException) -> AgentReplyError:
        """A 200 body the SDK cannot decode: it raises the JSON decoder's own error, not an API error."""
        return AgentReplyError(self.name, "invalid", _not_a_reply(kind, f"its body is not JSON ({err})"))

    def _check_shape(self, kind: str, result: Any) -> None:
        if (problem := _unreadable(kind, result)) is not None:
            raise AgentReplyError(self.name, "invalid", _not_a_reply(kind, problem))

    def _request(self, task: str, schema: type[pydantic.BaseModel] | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens}
        if self.cache_system_prompt and self.system_prompt:
            request["system"] = [{"type": "text", "text": self.system_prompt, "cache_control": {"type": "ephemeral"}}]
        elif self.system_prompt:  # an empty system prompt is left out, as in a request without one
            request["system"] = self.system_prompt
        request["messages"] = [*self.history, {"role": "user", "content": task}]
        if schema is not None:  # structured outputs: the API keeps the reply to this JSON schema
            request["output_config"] = {"format": {"type": "json_schema",
                                                   "schema": anthropic.transform_schema(schema.model_json_schema())}}
        return request

    def _keep(self, task: str, message: Message, turns: list[dict[str, Any]] | None = None) -> str:
        """Read the answer `message` to `task` and keep the turns that led to it (the task alone, or with tool
        rounds: the task and each round's two turns) with the answer; a reply that is no answer raises."""
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
        self.history += [*(turns or [{"role": "user", "content": task}]), {"role": "assistant", "content": text}]
        return text


def _not_a_reply(kind: str, problem: str) -> str:
    what = "a token count" if kind == "count_tokens" else "a Message"
    return (f"the server's reply is not {what}: {problem}; check that ANTHROPIC_BASE_URL is a Messages-API "
            "server (or that a replayed recording is intact)")


def _unreadable(kind: str, result: Any) -> str | None:
    """What is wrong with a 200 reply that should be a Message (or, for `count_tokens`, a token count),
    in a few words; None when mas can read it.

    Subtle: the SDK builds its models without validating them (so a newer API's fields still load),
    so a body of another shape arrives as a Message whose fields are None, a non-JSON body as its text.
    Only what mas reads is checked: a block type this SDK does not know yet is fine.

    >>> _unreadable("create", "<html>Welcome</html>")
    "it is text, not JSON ('<html>Welcome</html>')"
    >>> _unreadable("create", Message.model_construct(type="message", content=None))
    'its content is not a list of blocks'
    >>> from anthropic.types import TextBlock  # a block with no type is said first, after a block with no text too
    >>> _unreadable("create", Message.model_construct(type="message", content=[TextBlock.model_construct(type="text"),
    ...                                                                          TextBlock.model_construct(type=None)]))
    'its content is not a list of blocks'
    """
    expected = MessageTokensCount if kind == "count_tokens" else Message
    if not isinstance(result, expected):
        if isinstance(result, str):
            return f"it is text, not JSON ({result[:60]!r})"
        if result is None:
            return "it is JSON null, not an object"
        return f"it is a JSON {'list' if isinstance(result, list) else type(result).__name__}, not an object"
    if kind == "count_tokens":
        return None if _whole(result.input_tokens) else "it has no input_tokens"
    if result.type != "message":
        return f"its type is {result.type!r}, not 'message'"
    # Plain loops, no generators or dicts: this runs after every call.
    content = result.content
    if not isinstance(content, list):
        return "its content is not a list of blocks"
    textless = False
    for block in content:
        kind_of_block = getattr(block, "type", None)
        if not isinstance(kind_of_block, str):
            return "its content is not a list of blocks"
        if kind_of_block == "text" and not isinstance(getattr(block, "text", None), str):
            textless = True  # said only once every block is known to have a type
    if textless:
        return "a text block has no text"
    usage = result.usage
    if not (_whole(getattr(usage, "input_tokens", None)) and _whole(getattr(usage, "output_tokens", None))):
        return "its usage has no input_tokens and output_tokens"
    for key in TOKEN_FIELDS:
        value = getattr(usage, key, None)
        if value is not None and not _whole(value):
            return "its usage has token counts that are not whole numbers"
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class ResearcherAgent(BaseAgent):
    role = "researcher"


class WriterAgent(BaseAgent):
    role = "writer"


class ValidatorAgent(BaseAgent):
    role = "validator"

    def review(self, research: str, draft: str, attempts: int = VALIDATION_ATTEMPTS) -> ValidationResult:
        """The verdict on a draft, read strictly (`mas.contracts`); an unreadable answer is re-asked
        with the error, at most `attempts` answers in all, then `AgentReplyError` of the last answer's
        kind ("invalid", or "refusal", "max_tokens", "empty").

        Each review starts from an empty history, so a cycle's input does not grow with the last one's.
        """
        try:
            return self.ask(validate_task(research, draft), ValidationResult, attempts)
        except ContractError as err:
            # the last answer's kind: a refusal stays a refusal (not retried), a cut-off a cut-off
            raise AgentReplyError(self.name, err.kinds[-1], f"no valid verdict after {len(err.reasons)} answers; "
                                  f"last: {err.reasons[-1]}") from None
