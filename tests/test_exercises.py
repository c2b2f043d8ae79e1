"""The exercises' checks: they pass a right answer and give a specific hint on a wrong one."""

from __future__ import annotations

import json
import sqlite3

import pytest

from mas.agents import BaseAgent, ValidatorAgent, WriterAgent
from mas.exercises import NotYet, check, solution
from mas.llm import make_client
from mas.memory import SQLiteMemory
from mas.offline import Fault, OfflineTransport
from mas.orchestrator import Orchestrator
from mas.prompts import SYSTEM_PROMPTS, revise_task, write_task
from mas.schemas import ValidationResult

TOPIC = "How vector databases enable semantic search"


def test_unknown_exercise_and_solution_pointer():
    with pytest.raises(KeyError, match="no check named '99.9'"):
        check("99.9")
    assert "notebooks/03_*.ipynb" in solution("03.2") and "# Answer 2" in solution("03.2")


# ---------------------------------------------------------------- 01


def test_01_1_json_value(capsys):
    check("01.1", json.dumps({"approved": False}), {"approved": False})
    assert capsys.readouterr().out.startswith("✓ 01.1")
    with pytest.raises(NotYet, match="not JSON"):
        check("01.1", str({"approved": False}), {"approved": False})


class _Keys:
    """A minimal memory for the 01.2 check, with the answer's keys() or a wrong one."""

    def __init__(self, path, exact=True):
        self.conn, self.exact = sqlite3.connect(path), exact
        self.conn.execute("CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT)")

    def set(self, key, value):
        self.conn.execute("INSERT OR REPLACE INTO memory VALUES (?, ?)", (key, value))

    def keys(self, prefix=""):
        if self.exact:
            sql, args = "SELECT key FROM memory WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        else:
            sql, args = "SELECT key FROM memory WHERE key LIKE ? ORDER BY key", (prefix + "%",)
        return [k for (k,) in self.conn.execute(sql, args)]

    def close(self):
        self.conn.close()


def test_01_2_keys_method_right_and_the_like_wildcard_trap():
    check("01.2", _Keys)

    class WithLike(_Keys):
        def __init__(self, path):
            super().__init__(path, exact=False)

    with pytest.raises(NotYet, match="`_` is a wildcard"):
        check("01.2", WithLike)
    with pytest.raises(NotYet, match="Add a method `keys"):
        check("01.2", SQLiteMemory)


# ---------------------------------------------------------------- 02


def test_02_1_specialist(monkeypatch):
    monkeypatch.setitem(SYSTEM_PROMPTS, "summarizer", "You are a summarizer. Three bullets at most.")

    class SummarizerAgent(BaseAgent):
        role = "summarizer"

    check("02.1", SummarizerAgent, "summarizer")

    class Forgot(BaseAgent):
        role = "assistant-ish"

    with pytest.raises(NotYet, match="Set `role = 'summarizer'`"):
        check("02.1", Forgot, "summarizer")
    with pytest.raises(NotYet, match="subclass of mas.agents.BaseAgent"):
        check("02.1", object, "summarizer")


def _research_and_faithful_draft():
    from mas.agents import ResearcherAgent
    from mas.prompts import research_task

    client = make_client()
    research = ResearcherAgent(client=client).run(research_task(TOPIC, "engineers"))
    first = WriterAgent(client=client).run(write_task(TOPIC, "engineers", research))
    return research, WriterAgent(client=client).run(revise_task(TOPIC, "engineers", research, first, ["fix"]))


def test_02_2_strict_validator_right_and_wrong():
    import re

    research, faithful = _research_and_faithful_draft()

    class Strict(ValidatorAgent):
        def review(self, research, draft, attempts=3):
            verdict = super().review(research, draft, attempts)
            missing = [f"Missing source: {n}" for n in re.findall(r"\(source: [^)]*\)", research) if n not in draft]
            issues = verdict.issues + missing
            return ValidationResult(issues=issues, approved=not issues)

    check("02.2", Strict, research, faithful)
    with pytest.raises(NotYet, match="approved a draft with every source note removed"):
        check("02.2", ValidatorAgent, research, faithful)

    class TooStrict(ValidatorAgent):
        def review(self, research, draft, attempts=3):
            return ValidationResult(issues=["missing source, always"], approved=False)

    with pytest.raises(NotYet, match="Too strict"):
        check("02.2", TooStrict, research, faithful)


# ---------------------------------------------------------------- 03


def test_03_checks_right_and_wrong(tmp_path):
    with SQLiteMemory(tmp_path / "m.db") as memory:
        refusing = make_client(transport=OfflineTransport(faults="refusal@writer"))
        refused = Orchestrator(memory, client=refusing, progress=None).run(TOPIC, run_id="x")
        check("03.1", refused, memory.scoped("x").get_all())
        clean = Orchestrator(memory, client=make_client(), progress=None).run(TOPIC, run_id="clean")
        with pytest.raises(NotYet, match="'approved'; a refusal should stop it"):
            check("03.1", clean, memory.scoped("clean").get_all())

        crash = make_client(transport=OfflineTransport(faults=[Fault("server_error", call=4)]), max_retries=0)
        Orchestrator(memory, client=crash, progress=None).run(TOPIC, run_id="r")
        resumed = Orchestrator(memory, client=make_client(), progress=None).run(run_id="r")
        check("03.2", ["Writer", "Validator"], resumed, clean)
        with pytest.raises(NotYet, match="only the revision"):
            check("03.2", ["Researcher", "Writer", "Validator"], resumed, clean)


# ---------------------------------------------------------------- 10


def test_10_checks_right_and_wrong():
    widgets = pytest.importorskip("mas.widgets")
    from mas.tracing import Tracer

    playground = widgets.Playground(show_time=False)
    playground.max_tokens.value = 349
    check("10.1", playground)
    playground.max_tokens.value = 600
    with pytest.raises(NotYet, match="so does 590"):
        check("10.1", playground)
    playground.max_tokens.value = 100
    with pytest.raises(NotYet, match="cut off"):
        check("10.1", playground)

    with Tracer() as tracer:
        Orchestrator(SQLiteMemory(":memory:"), progress=None).run(TOPIC, run_id="t")
    top = max(tracer.spans, key=lambda s: s.cost).agent
    check("10.2", tracer, top)
    with pytest.raises(NotYet, match="Sort the spans"):
        check("10.2", tracer, "Researcher" if top != "Researcher" else "Writer")
