"""The module's shape: no import cycle, one place that talks to the model, and what hooks see there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mas.agents import BaseAgent, ValidatorAgent
from mas.client import make_client
from mas.contracts import ValidationResult
from mas.errors import RunStopped
from mas.hooks import call_hook, counting
from mas.offline import OfflineTransport
from mas.prompts import validate_task

PACKAGE = Path(__file__).resolve().parent.parent / "mas"
MODEL_VERBS = {"create", "stream", "parse", "count_tokens"}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _top_level_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The mas modules `name` imports when it is loaded (not inside functions or `if TYPE_CHECKING`)."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def test_no_import_cycle_among_mas_modules():
    modules = _modules()
    graph = {name: _top_level_imports(name, tree, set(modules)) for name, tree in modules.items()}
    # a package imports its submodules by design; a submodule importing its own package is the cycle
    for name in graph:
        graph[name] -= {other for other in graph[name] if other.startswith(name + ".")}
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_only_the_agent_sends_model_requests():
    """Outside mas/offline, only mas/agents.py calls `<client>.messages.<verb>` (so hooks see every call); the
    batch runner (mas/batches.py) is the one other module that talks to the API, and only to `messages.batches`."""
    senders: dict[str, set[str]] = {}
    for name, tree in _modules().items():
        if name.startswith("mas.offline"):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in MODEL_VERBS | {"batches", "tool_runner"}
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "messages"):
                senders.setdefault(name, set()).add(node.attr)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and len(node.args) >= 1 and isinstance(node.args[0], ast.Attribute) \
                    and node.args[0].attr == "messages":
                senders.setdefault(name, set()).add("getattr")
    assert set(senders) == {"mas.agents", "mas.batches"} and senders["mas.batches"] == {"batches"}


class CountingTransport(OfflineTransport):
    """The offline model, counting every HTTP request it gets (count_tokens included)."""

    requests = 0

    def handle_request(self, request):
        self.requests += 1
        return super().handle_request(request)


def test_hooks_see_and_can_refuse_every_kind_of_request():
    transport = CountingTransport()
    validator = ValidatorAgent(client=make_client(transport=transport))
    seen = []

    def watch(agent, request):
        seen.append("count" if counting(request) else "structured" if "output_config" in request else "create")

    task = validate_task("- a fact", "A fact.")
    with call_hook(watch):
        validator.run(task)
        validator.ask(task, ValidationResult, structured=True)
        validator.count_tokens(task)
    assert seen == ["create", "structured", "count"]

    def refuse(agent, request):
        raise RunStopped("refused by a hook")

    sent = transport.requests
    assert sent == 3
    with call_hook(refuse):
        for call in (lambda: validator.run(task), lambda: validator.count_tokens(task),
                     lambda: validator.ask(task, ValidationResult, structured=True)):
            with pytest.raises(RunStopped):
                call()
    assert transport.requests == sent  # nothing was sent


def test_an_empty_system_prompt_is_left_out_of_the_request():
    from mas.offline import ScriptedTransport

    transport = ScriptedTransport(["hi"])
    BaseAgent("assistant", make_client(transport=transport), system_prompt="").run("hello")
    assert "system" not in transport.requests[0]


def test_every_agent_like_class_is_an_agent():
    from mas.agents import Agent, ResearcherAgent, WriterAgent, is_validator
    from mas.failures import Resilient
    from mas.hierarchy import ResearchTeam
    from mas.parallel import ParallelResearcher

    client = make_client(transport=OfflineTransport())
    team = ResearchTeam(["a", "b"], client=client)
    agents = [ResearcherAgent(client=client), WriterAgent(client=client), ValidatorAgent(client=client),
              Resilient(WriterAgent(client=client)), Resilient(ValidatorAgent(client=client)), team,
              ParallelResearcher(async_client=make_client(transport=OfflineTransport(), asynchronous=True))]
    assert all(isinstance(agent, Agent) for agent in agents)
    assert [is_validator(agent) for agent in agents] == [False, False, True, False, True, False, False]
