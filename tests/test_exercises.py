"""The exercises' checks: they pass a right answer and give a specific hint on a wrong one."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from mas.agents import BaseAgent, ValidatorAgent, WriterAgent
from mas.client import make_client
from mas.contracts import ValidationResult
from mas.exercises import CHECKS, NotYet, check, solution
from mas.memory import SQLiteMemory
from mas.offline import Fault, OfflineTransport, ScriptedTransport
from mas.orchestrator import Orchestrator
from mas.prompts import CITATION, SYSTEM_PROMPTS, research_task, write_task

TOPIC = "How vector databases enable semantic search"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_unknown_exercise_and_solution_pointer():
    with pytest.raises(KeyError, match="no check named '99.9'"):
        check("99.9")
    # solution() points to the answer cell, and says so; each cell it names is there, and ends with that check
    for exercise in CHECKS:
        pointer = solution(exercise)
        assert pointer.startswith(f"The reference answer to {exercise} is not shown here: it is in notebooks/")
        notebook = re.search(r"notebooks/(\d\d_\w+\.ipynb)", pointer).group(1)
        cell = re.search(r"'(# Answer \d+)'", pointer).group(1)
        sources = ["".join(c["source"]) for c in json.loads((NOTEBOOKS / notebook).read_text())["cells"]]
        answer = [src for src in sources if src.startswith(cell + "\n")]
        assert len(answer) == 1 and f'check("{exercise}"' in answer[0], (exercise, notebook, cell)
    with pytest.raises(KeyError, match="no exercise named '99.9'"):
        solution("99.9")


# ---------------------------------------------------------------- 01


def test_01_1_json_value_is_read_from_the_learners_database(tmp_path, capsys):
    verdict = {"approved": False, "issues": ["no sources"]}
    with SQLiteMemory(tmp_path / "exercise.db") as memory:
        memory.scoped("run-c").set_json("validation", verdict)
        check("01.1", tmp_path / "exercise.db", verdict)
        assert capsys.readouterr().out.startswith("✓ 01.1: run-c/validation holds {\"approved\": false")
        check("01.1", memory, verdict)  # right, written differently: the memory itself, still open
        check("01.1", str(tmp_path / "exercise.db"), verdict)  # or the path as a string

    # wrong: no memory at all, the stored text made by hand (the check used to pass this)
    with pytest.raises(NotYet, match="no database file at '{\"approved\".*not the text read from it"):
        check("01.1", json.dumps(verdict), verdict)
    # wrong: set() with str(value), not set_json
    with SQLiteMemory(tmp_path / "str.db") as memory:
        memory.scoped("run-c").set("validation", str(verdict))
    with pytest.raises(NotYet, match="not JSON.*Use set_json"):
        check("01.1", tmp_path / "str.db", verdict)
    # wrong: not in the scope run-c
    with SQLiteMemory(tmp_path / "unscoped.db") as memory:
        memory.set_json("validation", verdict)
    with pytest.raises(NotYet, match=r"No 'validation' in the scope 'run-c'.*keys: validation\).*not as 'validation'"):
        check("01.1", tmp_path / "unscoped.db", verdict)
    # wrong: another value than the one passed
    with pytest.raises(NotYet, match="reads back as .*not the value you passed"):
        check("01.1", tmp_path / "exercise.db", {"approved": True, "issues": []})
    with pytest.raises(NotYet, match="Pass the structured value"):
        check("01.1", tmp_path / "exercise.db", json.dumps(verdict))
    (tmp_path / "notes.txt").write_text("not a database")
    with pytest.raises(NotYet, match="notes.txt has no memory table"):
        check("01.1", tmp_path / "notes.txt", verdict)


class _Keys:
    """A minimal memory for the 01.2 check, with the answer's keys() or a wrong one."""

    def __init__(self, path, sql="SELECT key FROM memory WHERE substr(key, 1, ?) = ? ORDER BY key", like=False):
        self.conn, self.sql, self.like = sqlite3.connect(path), sql, like
        self.conn.execute("CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT)")

    def set(self, key, value):
        self.conn.execute("INSERT OR REPLACE INTO memory VALUES (?, ?)", (key, value))

    def keys(self, prefix=""):
        args = (prefix + "%",) if self.like else (len(prefix), prefix)
        return [k for (k,) in self.conn.execute(self.sql, args)]

    def close(self):
        self.conn.close()


def _keys_class(sql, like=False):
    class Memory(_Keys):
        def __init__(self, path):
            super().__init__(path, sql, like)

    return Memory


def test_01_2_keys_method_right_and_wrong():
    check("01.2", _Keys)  # the notebook's answer

    # right, written differently: filtered and sorted in Python; a range on the key (uses the index) with ORDER BY
    class InPython(_Keys):
        def keys(self, prefix=""):
            return sorted(k for (k,) in self.conn.execute("SELECT key FROM memory") if k.startswith(prefix))

    check("01.2", InPython)

    class Range(_Keys):
        def keys(self, prefix=""):
            if not prefix:
                return [k for (k,) in self.conn.execute("SELECT key FROM memory ORDER BY key")]
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            return [k for (k,) in self.conn.execute("SELECT key FROM memory WHERE key >= ? AND key < ? ORDER BY key",
                                                    (prefix, upper))]

    check("01.2", Range)

    # wrong: no ORDER BY (the primary key's index returns them sorted today: the check used to pass this)
    with pytest.raises(NotYet, match=r"returned \['run_1/research', 'run_1/draft'\]: the right keys, not sorted.*"
                                     "ORDER BY key"):
        check("01.2", _keys_class("SELECT key FROM memory WHERE substr(key, 1, ?) = ?"))

    class SortedOnlyWithPrefix(_Keys):
        def keys(self, prefix=""):
            return super().keys(prefix) if prefix else [k for (k,) in self.conn.execute("SELECT key FROM memory")]

    with pytest.raises(NotYet, match=r"`keys\(\)` returned every key, but not sorted"):
        check("01.2", SortedOnlyWithPrefix)
    with pytest.raises(NotYet, match="`_` is a wildcard"):
        check("01.2", _keys_class("SELECT key FROM memory WHERE key LIKE ? ORDER BY key", like=True))

    class LikeEscaped(_Keys):  # `_` and `%` escaped, but LIKE still ignores case
        def keys(self, prefix=""):
            escaped = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
            return [k for (k,) in self.conn.execute(
                "SELECT key FROM memory WHERE key LIKE ? ESCAPE '\\' ORDER BY key", (escaped + "%",))]

    with pytest.raises(NotYet, match="also returned 'RUN_1/notes': SQLite's `LIKE` ignores case"):
        check("01.2", LikeEscaped)

    class UnderscoreOnly(_Keys):  # LIKE made case-sensitive and `_` escaped, but `%` forgotten
        def keys(self, prefix=""):
            self.conn.execute("PRAGMA case_sensitive_like = ON")
            escaped = prefix.replace("_", "\\_")
            return [k for (k,) in self.conn.execute(
                "SELECT key FROM memory WHERE key LIKE ? ESCAPE '\\' ORDER BY key", (escaped + "%",))]

    with pytest.raises(NotYet, match=r"`keys\('50%'\)` returned \['50%/a', '50x/a'\].*`%` is a wildcard too"):
        check("01.2", UnderscoreOnly)

    class Everything(_Keys):
        def keys(self, prefix=""):
            return [k for (k,) in self.conn.execute("SELECT key FROM memory ORDER BY key")]

    with pytest.raises(NotYet, match="also returned 'runX1/draft'"):
        check("01.2", Everything)

    class Tuple(_Keys):
        def keys(self, prefix=""):
            return tuple(super().keys(prefix))

    with pytest.raises(NotYet, match="should return a list, it returned tuple"):
        check("01.2", Tuple)
    with pytest.raises(NotYet, match="Add a method `keys"):
        check("01.2", SQLiteMemory)


# ---------------------------------------------------------------- 02

SUMMARIZER = "You are a summarizer. Condense the text you are given into at most three bullet points, in plain words."


def test_02_1_specialist_right_and_wrong(monkeypatch, capsys):
    monkeypatch.setitem(SYSTEM_PROMPTS, "summarizer", SUMMARIZER)

    class SummarizerAgent(BaseAgent):  # the notebook's answer
        role = "summarizer"

    check("02.1", SummarizerAgent, "summarizer")
    assert "SummarizerAgent (summarizer) condenses a draft into 3 bullet(s)" in capsys.readouterr().out

    class ByConstructor(BaseAgent):  # right, written differently: the role given to BaseAgent.__init__
        def __init__(self, **kwargs):
            super().__init__("summarizer", **kwargs)

    check("02.1", ByConstructor, "summarizer")
    monkeypatch.setitem(SYSTEM_PROMPTS, "tldr", "Reduce what you are given to two bullet points at most.")
    check("02.1", type("TldrAgent", (BaseAgent,), {"role": "tldr"}), "tldr")  # another specialist, another name

    # wrong: one of the course's own agents passes for a fourth (the check used to pass this)
    with pytest.raises(NotYet, match="'writer' is one of the course's three roles"):
        check("02.1", WriterAgent, "writer")
    # wrong: the pitfall the exercise warns about, "a writer's draft": offline the model plays the writer
    monkeypatch.setitem(SYSTEM_PROMPTS, "summarizer", "You are a summarizer. Condense a writer's draft into at most "
                        "three bullet points.")
    with pytest.raises(NotYet, match="Offline, your prompt makes the model play the writer.*a writer's draft"):
        check("02.1", SummarizerAgent, "summarizer")
    # wrong: a prompt that does not ask for bullets: the reply is prose
    monkeypatch.setitem(SYSTEM_PROMPTS, "summarizer", "You are a summarizer. Be brief.")
    with pytest.raises(NotYet, match=r"answered 1 line\(s\), not at most three bullet points.*ask for at most three"):
        check("02.1", SummarizerAgent, "summarizer")
    monkeypatch.setitem(SYSTEM_PROMPTS, "summarizer", SUMMARIZER)

    class OwnPrompt(BaseAgent):
        def __init__(self, **kwargs):
            super().__init__("summarizer", system_prompt="Summarize in three bullets.", **kwargs)

    with pytest.raises(NotYet, match=r"use the prompt from SYSTEM_PROMPTS\['summarizer'\]"):
        check("02.1", OwnPrompt, "summarizer")

    class Forgot(BaseAgent):
        role = "assistant-ish"

    monkeypatch.setitem(SYSTEM_PROMPTS, "assistant-ish", SUMMARIZER)
    with pytest.raises(NotYet, match="role is 'assistant-ish': set `role = 'summarizer'`"):
        check("02.1", Forgot, "summarizer")

    class NeedsAName(BaseAgent):
        role = "summarizer"

        def __init__(self, name, **kwargs):
            super().__init__(name=name, **kwargs)

    with pytest.raises(NotYet, match=r"NeedsAName\(client=...\) raised TypeError"):
        check("02.1", NeedsAName, "summarizer")
    with pytest.raises(NotYet, match="Add a system prompt for 'digest'"):
        check("02.1", SummarizerAgent, "digest")
    with pytest.raises(NotYet, match="subclass of mas.agents.BaseAgent"):
        check("02.1", object, "summarizer")
    with pytest.raises(NotYet, match="subclass of mas.agents.BaseAgent, and pass the class itself"):
        check("02.1", SummarizerAgent(client=make_client()), "summarizer")


def _research_and_faithful_draft():
    from mas.agents import ResearcherAgent
    from mas.prompts import research_task

    research = ResearcherAgent(client=make_client()).run(research_task(TOPIC, "engineers"))
    # a faithful draft by construction: every research point, with its source note, as a sentence
    return research, "# Vector search\n\n" + "\n\n".join(SOURCE_POINT.findall(research))


SOURCE_POINT = re.compile(r"^- (.+\(source: [^()]*\))$", re.MULTILINE)


class _StrictValidator(ValidatorAgent):
    """02.2's answer: the sources asked for in the prompt, and checked in code."""

    def __init__(self, **kwargs):
        super().__init__(system_prompt=SYSTEM_PROMPTS["validator"] + " Check that every claim has a source.", **kwargs)

    def review(self, research, draft, attempts=3):
        verdict = super().review(research, draft, attempts)
        missing = [f"Missing source: {n}" for n in re.findall(r"\(source: [^)]*\)", research) if n not in draft]
        issues = verdict.issues + missing
        return ValidationResult(issues=issues, approved=not issues)


def test_02_2_strict_validator_right_and_wrong():
    research, faithful = _research_and_faithful_draft()
    check("02.2", _StrictValidator, research, faithful)

    class NoCallWhenUnsourced(ValidatorAgent):  # right, written differently: the code first, the model only if needed
        def __init__(self, **kwargs):
            super().__init__(system_prompt=SYSTEM_PROMPTS["validator"] + " Every (source: ...) note must stay.",
                             **kwargs)

        def review(self, research, draft, attempts=3):
            notes = set(re.findall(r"\(source: [^()]*\)", research))
            if missing := sorted(n for n in notes if n not in draft):
                return ValidationResult(issues=[f"The draft drops the source {n}" for n in missing], approved=False)
            return super().review(research, draft, attempts)

    check("02.2", NoCallWhenUnsourced, research, faithful)

    # wrong: the course's validator trusts the model, which may approve a draft that lost its sources
    with pytest.raises(NotYet, match="approved a draft with every source note removed"):
        check("02.2", ValidatorAgent, research, faithful)

    class PromptOnly(ValidatorAgent):  # asks for sources, checks nothing in code
        def __init__(self, **kwargs):
            super().__init__(system_prompt=SYSTEM_PROMPTS["validator"] + " Check every source.", **kwargs)

    with pytest.raises(NotYet, match="add a check in code"):
        check("02.2", PromptOnly, research, faithful)

    class CodeOnly(_StrictValidator):  # checks in code, never asks the model for sources
        def __init__(self, **kwargs):
            ValidatorAgent.__init__(self, **kwargs)

    with pytest.raises(NotYet, match="ask for the sources in the system prompt"):
        check("02.2", CodeOnly, research, faithful)

    class TooStrict(_StrictValidator):
        def review(self, research, draft, attempts=3):
            return ValidationResult(issues=["missing source, always"], approved=False)

    with pytest.raises(NotYet, match="Too strict"):
        check("02.2", TooStrict, research, faithful)

    class IgnoresTheModel(_StrictValidator):  # its own check only: the model's issues are lost
        def review(self, research, draft, attempts=3):
            missing = [n for n in re.findall(r"\(source: [^)]*\)", research) if n not in draft]
            return ValidationResult(issues=missing, approved=not missing)

    with pytest.raises(NotYet, match="dropped the model's own issues"):
        check("02.2", IgnoresTheModel, research, faithful)

    class AnySource(_StrictValidator):  # wrong: rejects only a draft with no source at all (the check passed it)
        def review(self, research, draft, attempts=3):
            verdict = ValidatorAgent.review(self, research, draft, attempts)
            issues = verdict.issues + ([] if "(source:" in draft else ["The draft has no source at all."])
            return ValidationResult(issues=issues, approved=not issues)

    with pytest.raises(NotYet, match=r"approved a draft that lost one source note, \(source: .*kept the others"):
        check("02.2", AnySource, research, faithful)

    class CountsSources(_StrictValidator):  # wrong: as many notes as the research, whichever they are
        def review(self, research, draft, attempts=3):
            verdict = ValidatorAgent.review(self, research, draft, attempts)
            short = draft.count("(source:") < len(set(re.findall(r"\(source: [^)]*\)", research)))
            issues = verdict.issues + (["Too few sources."] if short else [])
            return ValidationResult(issues=issues, approved=not issues)

    with pytest.raises(NotYet, match="lost one source note"):
        check("02.2", CountsSources, research, faithful)

    class Silent(_StrictValidator):  # rejects the right drafts, but says nothing about why
        def review(self, research, draft, attempts=3):
            verdict = super().review(research, draft, attempts)
            return ValidationResult(issues=["Not good enough."] if verdict.issues else [], approved=verdict.approved)

    with pytest.raises(NotYet, match="also say why, with an issue that names the missing source"):
        check("02.2", Silent, research, faithful)

    lost = faithful.replace(SOURCE_POINT.findall(research)[1].rsplit(" (source:", 1)[1], ")")
    with pytest.raises(NotYet, match="has lost 1 of the research's source notes"):
        check("02.2", _StrictValidator, research, lost)


# ---------------------------------------------------------------- 03


@pytest.fixture(scope="module")
def runs_03(tmp_path_factory):
    """Notebook 03's runs: one refused, one clean, one crashed at the revision and resumed (calls recorded)."""
    from mas.hooks import call_hook

    memory = SQLiteMemory(tmp_path_factory.mktemp("m") / "m.db")
    refusing = make_client(transport=OfflineTransport(faults="refusal@writer"))
    refused = Orchestrator(memory, client=refusing, progress=None).run(TOPIC, run_id="x")
    clean = Orchestrator(memory, client=make_client(), progress=None).run(TOPIC, run_id="clean")
    crash = make_client(transport=OfflineTransport(faults=[Fault("server_error", call=4)]), max_retries=0)
    Orchestrator(memory, client=crash, progress=None).run(TOPIC, run_id="r")
    agents = []
    with call_hook(lambda agent, request: agents.append(agent)):
        resumed = Orchestrator(memory, client=make_client(), progress=None).run(run_id="r")
    yield memory, refused, clean, resumed, agents
    memory.close()


def test_03_1_refused_run_right_and_wrong(runs_03):
    memory, refused, clean, _, _ = runs_03
    check("03.1", refused, memory.scoped("x").get_all())
    # right, written differently: the fault as a Fault, another audience and run id, in a memory of its own
    with SQLiteMemory(":memory:") as other:
        client = make_client(transport=OfflineTransport(faults=[Fault("refusal", role="writer")]))
        mine = Orchestrator(other, client=client, progress=None).run(TOPIC, audience="new engineers", run_id="ex-r")
        scope = other.scoped("ex-r")
        check("03.1", mine, dict(sorted(scope.get_all().items())))
    with pytest.raises(NotYet, match="'approved'; a refusal should stop it"):
        check("03.1", clean, memory.scoped("clean").get_all())
    with pytest.raises(NotYet, match="keys of the whole memory.*memory.scoped\\(run_id\\).get_all\\(\\)"):
        check("03.1", refused, memory.get_all())
    with pytest.raises(NotYet, match="research step ran before the refusal"):
        check("03.1", refused, memory.scoped("nothing-here").get_all())
    with pytest.raises(NotYet, match="A refusal must never be saved as a draft"):
        check("03.1", refused, {**memory.scoped("x").get_all(), "draft_1": "I can't help with that."})
    with SQLiteMemory(":memory:") as elsewhere:  # failed, but for another reason: the writer's server is down
        down = make_client(transport=OfflineTransport(faults=[Fault("server_error", role="writer", times=None)]),
                           max_retries=0)
        failed = Orchestrator(elsewhere, client=down, progress=None).run(TOPIC, run_id="d")
        assert failed.status == "failed"
        with pytest.raises(NotYet, match="not for a refusal"):
            check("03.1", failed, elsewhere.scoped("d").get_all())
    with pytest.raises(NotYet, match="Pass the run's result"):
        check("03.1", "failed", memory.scoped("x").get_all())


def test_03_2_resume_right_and_wrong(runs_03):
    _, _, clean, resumed, agents = runs_03
    assert [a.role for a in agents] == ["writer", "validator"]
    check("03.2", [a.name for a in agents], resumed, clean)  # the notebook's answer: by name
    check("03.2", [a.role for a in agents], resumed, clean)  # by role (the check used to fail this)
    check("03.2", agents, resumed, clean)  # the agents themselves
    check("03.2", ("Writer", "Validator"), resumed, clean)

    with pytest.raises(NotYet, match="only the revision"):
        check("03.2", ["Researcher", "Writer", "Validator"], resumed, clean)
    with pytest.raises(NotYet, match="only the revision.*Record agent.name"):
        check("03.2", [a.model for a in agents], resumed, clean)  # the model is no agent
    with pytest.raises(NotYet, match="the same run \\('clean'\\)"):
        check("03.2", ["Writer", "Validator"], clean, clean)  # a clean run is no resume
    with pytest.raises(NotYet, match="ended as 'failed', not 'approved'"):
        check("03.2", ["Writer", "Validator"], resumed.model_copy(update={"status": "failed"}), clean)
    fewer = clean.model_copy(update={"usage": clean.usage.model_copy(update={"calls": 3}), "run_id": "other"})
    with pytest.raises(NotYet, match="made 5 calls, a clean run 3"):
        check("03.2", ["Writer", "Validator"], resumed, fewer)
    with pytest.raises(NotYet, match="Pass as `clean` the result"):
        check("03.2", ["Writer", "Validator"], resumed, clean.usage.calls)
    with pytest.raises(NotYet, match="Pass the list your hook filled"):
        check("03.2", "Writer, Validator", resumed, clean)


# ---------------------------------------------------------------- 10


def test_10_checks_right_and_wrong():
    widgets = pytest.importorskip("mas.widgets")
    from mas.tracing import Tracer

    playground = widgets.Playground(show_time=False)
    playground.max_tokens.value = 1024  # wrong: allow more
    with pytest.raises(NotYet, match="keep it at 200 or below"):
        check("10.1", playground)
    playground.max_tokens.value = 200  # wrong: the course's prompt asks for every fact, with its source
    with pytest.raises(NotYet, match="still cut off at max_tokens=200"):
        check("10.1", playground)
    playground.system.value = SYSTEM_PROMPTS["researcher"] + " Give exactly 2 facts, as prose, no sources."
    with pytest.raises(NotYet, match="0 bullet point"):  # wrong: it fits, but as prose the writer can't use
        check("10.1", playground)
    playground.system.value = SYSTEM_PROMPTS["researcher"] + " Give exactly 3 bullets, no sources."
    check("10.1", playground)  # right: ask for less
    assert playground.max_tokens.value == 200 and playground.prompts["researcher"].endswith("no sources.")

    with Tracer() as tracer:
        Orchestrator(SQLiteMemory(":memory:"), progress=None).run(TOPIC, run_id="t")
    top = max(tracer.spans, key=lambda s: s.cost)
    check("10.2", tracer, top.agent, top.index)
    with pytest.raises(NotYet, match="Sort the spans"):
        check("10.2", tracer, "Researcher" if top.agent != "Researcher" else "Writer", top.index)
    other = next(s.index for s in tracer.spans if s.agent == top.agent and s.index != top.index)
    with pytest.raises(NotYet, match="Right agent, wrong call"):
        check("10.2", tracer, top.agent, other)  # e.g. the agent with the biggest total, any of its calls


# ---------------------------------------------------------------- 05


class _Outline:
    """05.1's answer: a writer with no model, the research points under the topic as a title."""

    name, role = "Outline writer", "writer"

    def __init__(self, points=None):
        from mas.contracts import Usage

        self.usage, self.points = Usage(), points  # points: keep only the first few (a draft that misses some)

    def reset(self):
        pass

    def run(self, task):
        from mas.prompts import bullets, tag

        points = bullets(tag(task, "research") or "")[:self.points]
        return f"# {tag(task, 'topic')}\n\n" + "\n".join(f"- {p}" for p in points)


def test_05_1_fallback_to_a_writer_with_no_model_right_and_wrong(capsys):
    from mas.agents import BaseAgent
    from mas.failures import Fallback, Resilient, Retry, Skip

    check("05.1", [Fallback(agent=_Outline())])
    out = capsys.readouterr().out  # research, the writer's 3 failed requests, validate: approved at once
    assert "failed once (3 requests" in out and "Outline writer wrote" in out and "5 requests in all" in out
    check("05.1", Resilient(WriterAgent(client=make_client()), [Fallback(agent=_Outline()), Retry(1)]))
    with pytest.raises(NotYet, match=r"The dead service got 2 writer calls \(6 requests\).*your Retry"):
        check("05.1", [Retry(1), Fallback(agent=_Outline())])
    with pytest.raises(NotYet, match=r"Fallback\(model=...\) sends the same request to another model"):
        check("05.1", [Retry(1), Fallback(model="claude-haiku-4-5")])
    with pytest.raises(NotYet, match="Nothing falls back"):
        check("05.1", [Retry(1), Skip()])
    simpler = BaseAgent("writer", client=make_client(), model="claude-haiku-4-5", system_prompt="You are a writer.")
    with pytest.raises(NotYet, match="calls a model too"):
        check("05.1", [Fallback(agent=simpler)])
    with pytest.raises(NotYet, match=r"never approved your fallback's draft: Missing point from the research"):
        check("05.1", [Fallback(agent=_Outline(points=2))])

    class NoUsage:
        name = "No usage"

        def run(self, task):
            return "# Draft"

    with pytest.raises(NotYet, match=r"The run broke in your fallback: AttributeError.*usage"):
        check("05.1", [Fallback(agent=NoUsage())])
    with pytest.raises(NotYet, match="Pass the list of failure policies"):
        check("05.1", "Retry(1), Fallback")


def test_05_2_breaker_right_and_wrong():
    from mas.failures import CircuitBreaker, Fallback, Resilient, Retry

    def wrapped(policies, breaker=None):
        return Resilient(ValidatorAgent(client=make_client()), policies, breaker=breaker)

    opened = wrapped([Retry(5)], CircuitBreaker(max_failures=2))
    opened.breaker.record(None)  # a used breaker is fine: the check builds a fresh one with its settings
    check("05.2", opened)
    with pytest.raises(NotYet, match="no circuit breaker"):
        check("05.2", wrapped([Retry(5)]))
    with pytest.raises(NotYet, match=r"'agent_failed' after 2 validator request\(s\).*Retry more times"):
        check("05.2", wrapped([Retry(1)], CircuitBreaker(max_failures=2)))
    with pytest.raises(NotYet, match=r"opened after 3 failed calls; make it open after 2"):
        check("05.2", wrapped([Retry(5)], CircuitBreaker(max_failures=3)))
    with pytest.raises(NotYet, match="got 3 requests, not 2"):
        check("05.2", wrapped([Retry(5), Fallback(model="claude-haiku-4-5")], CircuitBreaker(max_failures=2)))
    with pytest.raises(NotYet, match="Pass your wrapped validator"):
        check("05.2", ValidatorAgent(client=make_client()))


# ---------------------------------------------------------------- 06

ANGLES = ["key concepts", "real-world use", "limitations and risks"]


def _parallel(angles, max_concurrency, **options):
    from mas.client import make_client
    from mas.offline import Latency
    from mas.parallel import ParallelResearcher

    client = make_client(asynchronous=True, latency=Latency(base=0.01))
    return ParallelResearcher(angles, async_client=client, max_concurrency=max_concurrency, **options)


def test_06_1_fourth_angle_right_and_wrong(capsys):
    check("06.1", _parallel([*ANGLES, "costs"], 4))
    # hand-worked from the notes on vector databases: the three angles choose 2 facts each, "costs" 2 others
    assert "'costs' added 2 point(s) of its own: 8 in all, against 6 from the other three" in capsys.readouterr().out
    with pytest.raises(NotYet, match=r"At most 3 calls were in flight at once: max_concurrency=3"):
        check("06.1", _parallel([*ANGLES, "costs"], 3))
    with pytest.raises(NotYet, match="Add the angle 'costs'"):
        check("06.1", _parallel([*ANGLES, "history"], 4))
    with pytest.raises(NotYet, match="The research stopped: .*max_tokens=50"):
        check("06.1", _parallel([*ANGLES, "costs"], 4, max_tokens=50))
    # a focus in the system prompt overrides every angle: all four get the same facts
    focused = SYSTEM_PROMPTS["researcher"] + " Focus on the basics."
    with pytest.raises(NotYet, match="The research has 2 points, no more than the other three angles' 2"):
        check("06.1", _parallel([*ANGLES, "costs"], 4, system_prompt=focused))


def test_06_2_one_slot_right_and_wrong():
    check("06.2", _parallel(ANGLES, 1), 3)
    with pytest.raises(NotYet, match="about 1 latencies.*one latency per angle"):
        check("06.2", _parallel(ANGLES, 1), 1)
    with pytest.raises(NotYet, match="max_concurrency=3; set it to 1"):
        check("06.2", _parallel(ANGLES, 3), 3)


def test_06_2_a_live_learner_is_checked_on_behaviour_not_on_the_offline_latency(capsys):
    import anthropic
    import httpx2

    from mas.offline import Latency, OfflineTransport
    from mas.parallel import ParallelResearcher

    # a client of any other server (here the offline model behind a base URL of its own): what the check sees live
    elsewhere = anthropic.AsyncAnthropic(api_key="any", base_url="http://127.0.0.1:9",
                                         http_client=httpx2.AsyncClient(transport=OfflineTransport(latency=Latency(base=0.01))))
    check("06.2", ParallelResearcher(ANGLES, async_client=elsewhere, max_concurrency=1), 41)
    out = capsys.readouterr().out
    assert "(live model: here its 3 calls took" in out and "your figure, 41, counts the offline model's" in out
    with pytest.raises(NotYet, match="max_concurrency=2; set it to 1"):
        check("06.2", ParallelResearcher(ANGLES, async_client=elsewhere, max_concurrency=2), 3)


# ---------------------------------------------------------------- 07


@pytest.fixture(scope="module")
def traced_run():
    from mas.tracing import Tracer

    with Tracer() as tracer, SQLiteMemory(":memory:") as memory:
        Orchestrator(memory, client=make_client(), progress=None).run(TOPIC, run_id="t")
    return tracer


def test_07_1_costliest_agent_right_and_wrong(traced_run):
    # worked by hand from the run's own tokens (so no figure of the offline model is written down here): every
    # call is on claude-opus-4-6, at $5 per million input tokens and $25 per million output tokens
    totals, costliest_call = {}, {}
    for span in traced_run.spans:
        assert span.model == "claude-opus-4-6"
        by_hand = (span.input_tokens * 5 + span.output_tokens * 25) / 1_000_000
        assert span.cost == pytest.approx(by_hand)
        totals[span.agent] = totals.get(span.agent, 0.0) + by_hand
        costliest_call[span.agent] = max(costliest_call.get(span.agent, 0.0), by_hand)
    run_cost = sum(totals.values())
    assert traced_run.summary().cost == pytest.approx(run_cost)
    assert max(totals, key=totals.get) == "Writer"  # two drafts, the longest replies of the run
    share = totals["Writer"] / run_cost
    cheapest = min(totals, key=totals.get)

    check("07.1", traced_run, "Writer", share)
    check("07.1", traced_run, "Writer", round(share, 2))  # rounded is fine
    with pytest.raises(NotYet, match=f"{cheapest} cost .* but another agent cost more"):
        check("07.1", traced_run, cheapest, totals[cheapest] / run_cost)
    one_call = costliest_call["Writer"] / run_cost
    assert abs(one_call - share) > 0.05  # the writer made two calls of similar cost
    with pytest.raises(NotYet, match=f"{one_call:.0%} is the share of Writer's most expensive call"):
        check("07.1", traced_run, "Writer", one_call)
    with pytest.raises(NotYet, match="a fraction of 1"):
        check("07.1", traced_run, "Writer", share * 100)


def test_07_2_tracer_price_right_and_wrong(monkeypatch):
    from mas.agents import ResearcherAgent
    from mas.pricing import PRICES, price
    from mas.tracing import Tracer

    def haiku_trace():
        with Tracer() as tracer:
            ResearcherAgent(client=make_client(), model="claude-haiku-5-5").run(f"<topic>{TOPIC}</topic>")
        return tracer

    tracer = haiku_trace()
    with pytest.raises(NotYet, match="still unknown"):
        check("07.2", tracer)
    tracer.reprice({"claude-haiku-5-5": price(input=0.50, output=0.10)})  # the rates swapped
    with pytest.raises(NotYet, match=r"Check the rates.*price\(input=0.10, output=0.50\)"):
        check("07.2", tracer)
    tracer.reprice({"claude-haiku-5-5": price(input=0.10, output=0.50)})
    check("07.2", tracer)
    monkeypatch.setitem(PRICES, "claude-haiku-5-5", price(0.10, 0.50))  # priced for everyone instead
    with pytest.raises(NotYet, match="a price for everyone"):
        check("07.2", haiku_trace())


# ---------------------------------------------------------------- 09


def _run_with_budget(max_calls):
    from mas.budget import Budget

    transport = OfflineTransport()
    with Budget(max_calls=max_calls), SQLiteMemory(":memory:") as memory:
        result = Orchestrator(memory, client=make_client(transport=transport, max_retries=0), progress=None).run(
            TOPIC, run_id="b")
    return result, transport.model.calls


def test_09_1_smallest_budget_right_and_wrong():
    # the least max_calls that finishes is the calls an approved run makes: research, a draft and a verdict,
    # then a revision and its verdict per cycle
    with SQLiteMemory(":memory:") as memory:
        free = Orchestrator(memory, client=make_client(), progress=None).run(TOPIC, run_id="free")
    needed = free.usage.calls
    assert free.status == "approved" and free.cycles >= 1 and needed == 3 + 2 * free.cycles
    enough, _ = _run_with_budget(needed)
    short, sent = _run_with_budget(needed - 1)
    assert enough.status == "approved" and (short.status, sent) == ("budget_exceeded", needed - 1)

    check("09.1", needed, enough, short, sent)
    roomy, _ = _run_with_budget(needed + 1)
    with pytest.raises(NotYet, match=f"max_calls={needed + 1} is enough, but your approved run made only {needed}"):
        check("09.1", needed + 1, roomy, enough, needed)
    too_short, too_few = _run_with_budget(needed - 2)
    with pytest.raises(NotYet, match=f"Your run with max_calls={needed - 1} ended as 'budget_exceeded'"):
        check("09.1", needed - 1, short, too_short, too_few)
    with pytest.raises(NotYet, match="refuses a call before it is sent"):
        check("09.1", needed, enough, short, needed)
    with pytest.raises(NotYet, match="ended as 'approved', not 'budget_exceeded'"):
        check("09.1", needed, enough, enough, sent)
    with pytest.raises(NotYet, match="Pass as `enough` the result of your run"):
        check("09.1", needed, "approved", short, sent)


def _chain(levels, client, max_depth=3):
    from mas.hierarchy import ResearchTeam

    team = ResearchTeam(["Prompt caching"], angle="level", client=client, max_depth=max_depth)
    for _ in range(levels - 1):
        team = ResearchTeam(["Prompt caching", team], angle="level", client=client, max_depth=max_depth)
    return team


def test_09_2_depth_limit_right_and_wrong():
    from mas.hierarchy import ResearchTeam

    check("09.2", _chain, 4, 3)
    with pytest.raises(NotYet, match="did not make 4 requests"):
        check("09.2", _chain, 4, 4)
    with pytest.raises(NotYet, match="A chain of 3 levels ran"):
        check("09.2", _chain, 3, 2)
    with pytest.raises(NotYet, match="A chain of 4 levels is refused already"):
        check("09.2", _chain, 5, 4)
    with pytest.raises(NotYet, match="built a tree 1 level"):
        check("09.2", lambda levels, client: ResearchTeam(["a"] * levels, client=client), 4, 3)
    with pytest.raises(NotYet, match="Leave max_depth at its default"):
        check("09.2", lambda levels, client: _chain(levels, client, max_depth=5), 6, 5)


# ---------------------------------------------------------------- 04


def _draft_class(forbid=True, min_length=1):
    from pydantic import BaseModel, ConfigDict, Field

    class Draft(BaseModel):
        model_config = ConfigDict(extra="forbid" if forbid else "ignore")

        title: str
        sections: list[str] = Field(min_length=min_length)

    return Draft


def _ask_writer(draft_class, replies, attempts=3):
    """The exercise's run: a scripted writer, asked for a Draft; its result (or error) and its transport."""
    from mas.errors import ContractError
    from mas.offline import ScriptedTransport

    script = ScriptedTransport(replies)
    writer = WriterAgent(client=make_client(transport=script))
    try:
        return writer.ask(write_task(TOPIC, "engineers", "- a point"), draft_class, attempts), script
    except ContractError as err:
        return err, script


ANSWER = {"title": "Vector search", "sections": ["## Overview\n\nEmbeddings map text to vectors."]}
FENCED = "```json\n" + json.dumps(ANSWER) + "\n```"


def test_04_1_draft_contract_right_and_wrong(capsys):
    from pydantic import Field

    draft = _draft_class()
    result, script = _ask_writer(draft, [FENCED, json.dumps(ANSWER)])
    check("04.1", draft, result, script)
    assert "✓ 04.1" in capsys.readouterr().out

    loose = _draft_class(forbid=False)
    with pytest.raises(NotYet, match=r"accepted a field nobody asked for.*extra=\"forbid\""):
        check("04.1", loose, *_ask_writer(loose, [FENCED, json.dumps(ANSWER)]))
    empty_ok = _draft_class(min_length=0)
    with pytest.raises(NotYet, match=r"accepted \"sections\": \[\].*Field\(min_length=1"):
        check("04.1", empty_ok, *_ask_writer(empty_ok, [FENCED, json.dumps(ANSWER)]))

    class Untitled(draft):  # the silent default notebook 04 warns about
        title: str = "Untitled"

    with pytest.raises(NotYet, match=r"accepted a reply with no \"title\": a default such as title: str = "
                                     r"\"Untitled\".*Give title no default"):
        check("04.1", Untitled, *_ask_writer(Untitled, [FENCED, json.dumps(ANSWER)]))

    class Unsectioned(draft):
        sections: list[str] = Field(default=["## Overview"], min_length=1)  # a default is not validated

    with pytest.raises(NotYet, match=r"accepted a reply with no \"sections\".*Give sections no default"):
        check("04.1", Unsectioned, *_ask_writer(Unsectioned, [FENCED, json.dumps(ANSWER)]))
    bare_first = _ask_writer(draft, [json.dumps(ANSWER)])  # no fence: accepted at once
    with pytest.raises(NotYet, match=r"asked 1 time\(s\): its first reply was accepted.*code fence"):
        check("04.1", draft, *bare_first)
    prose_first = _ask_writer(draft, ["Here it is: " + json.dumps(ANSWER), json.dumps(ANSWER)])
    with pytest.raises(NotYet, match="rejected, but not for a code fence"):
        check("04.1", draft, *prose_first)
    with pytest.raises(NotYet, match="Pass what writer.ask returned"):
        check("04.1", draft, ANSWER, script)


def test_04_2_failing_contract_right_and_wrong():
    from mas.errors import ReplyError

    draft = _draft_class()
    empty = json.dumps({"title": "Vector search", "sections": []})
    error, script = _ask_writer(draft, [empty] * 2, attempts=2)
    check("04.2", draft, error, len(script.requests))
    assert len(script.requests) == 2 and len(error.reasons) == 2

    three, _ = _ask_writer(draft, [empty] * 3)  # attempts left at 3
    with pytest.raises(NotYet, match="holds 3 reasons, one per answer: pass attempts=2"):
        check("04.2", draft, three, 3)
    with pytest.raises(NotYet, match="got 2 requests, not 3"):
        check("04.2", draft, error, 3)
    with pytest.raises(NotYet, match="A ReplyError is one answer's error"):
        check("04.2", draft, ReplyError("sections: too short"), 2)
    with pytest.raises(NotYet, match="Pass the exception writer.ask raised"):
        check("04.2", draft, None, 2)
    with pytest.raises(NotYet, match=r"accepted \"sections\": \[\]"):
        check("04.2", _draft_class(min_length=0), error, 2)


# ---------------------------------------------------------------- 08


@pytest.fixture
def namespace(redis_url):
    """A namespace of this test's own in the real Redis, emptied afterwards."""
    import uuid

    from mas.scaling import RedisMemory

    name = f"test-exercises-{uuid.uuid4().hex[:12]}"
    yield name
    with RedisMemory(redis_url, namespace=name) as memory:
        memory.clear()


DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_08_1_killed_worker_right_and_wrong(redis_url, tmp_path):
    """The exercise as the notebook's answer does it: a real `mas worker`, its pool process SIGKILLed mid-run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid

    pytest.importorskip("celery")
    from mas.scaling import RedisMemory, celery_app, submit

    queue = f"q-{uuid.uuid4().hex[:8]}"
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "mas.cli", "worker", "--queue", queue, "--concurrency", "1",
                               "--latency", "0.3"], env={**os.environ, "REDIS_URL": redis_url}, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        app = celery_app(redis_url)
        [task] = submit(app, ["Prompt caching"], f"ex{uuid.uuid4().hex[:8]}", queue=queue)
        with RedisMemory(redis_url) as memory:
            run = memory.scoped(task.id)
            deadline = time.monotonic() + 60
            while run.get("status") != "validating" and time.monotonic() < deadline:
                time.sleep(0.02)
            holder = run.get("worker")
            with pytest.raises(NotYet, match="is still running: kill it"):
                check("08.1", task.id, holder, {"status": "approved"}, url=redis_url)
            os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)
            end = task.get(timeout=120)
            check("08.1", task.id, holder, end, url=redis_url)  # passes: raises NotYet otherwise
            with pytest.raises(NotYet, match="No run 'elsewhere' in Redis"):
                check("08.1", "elsewhere", holder, end, url=redis_url)
            with pytest.raises(NotYet, match="finished by the process you say you killed"):
                check("08.1", task.id, holder, {**end, "worker": holder}, url=redis_url)
            with pytest.raises(NotYet, match="Pass what the task returned"):
                check("08.1", task.id, holder, "approved", url=redis_url)
            run.clear()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
    with pytest.raises(NotYet, match="(?s)No Redis answers at redis://127.0.0.1:1/0.*redis-server --port 6379"):
        check("08.1", task.id, holder, end, url=DOWN)


def _crash_and_resume(redis_url, namespace, max_retries=0):
    """The exercise's runs on the real Redis: the validator fails once, then a fresh client resumes."""
    from mas.scaling import RedisMemory

    with RedisMemory(redis_url, namespace=namespace) as memory:
        memory.scoped("my-crash").clear()
        broken = make_client(transport=OfflineTransport(faults=[Fault("server_error", role="validator")]),
                             max_retries=max_retries)
        first = Orchestrator(memory, client=broken, progress=None).run(TOPIC, run_id="my-crash")
        fresh = OfflineTransport()
        second = Orchestrator(memory, client=make_client(transport=fresh), progress=None).run(run_id="my-crash")
    return first, second, fresh.model.calls


def test_08_2_crash_resume_right_and_wrong(redis_url, namespace):
    first, second, calls = _crash_and_resume(redis_url, namespace)
    # crashed after research and draft 1; the resume: validation 1 again, draft 2, validation 2
    assert (first.status, first.usage.calls, second.status, calls, second.usage.calls) == ("failed", 2, "approved", 3, 5)
    check("08.2", namespace, first, second, calls, url=redis_url)
    with pytest.raises(NotYet, match="5 is the run's calls in all"):
        check("08.2", namespace, first, second, 5, url=redis_url)
    with pytest.raises(NotYet, match=r"The resume made 3 calls, not 2"):
        check("08.2", namespace, first, second, 2, url=redis_url)
    with pytest.raises(NotYet, match="Nothing is saved under the run 'my-crash'"):
        check("08.2", f"{namespace}/elsewhere", first, second, calls, url=redis_url)
    with pytest.raises(NotYet, match="(?s)No Redis answers at redis://127.0.0.1:1/0.*redis-server --port 6379"):
        check("08.2", namespace, first, second, calls, url=DOWN)

    retried = _crash_and_resume(redis_url, namespace, max_retries=2)  # the SDK's retry answers the 500
    assert retried[0].status == "approved"
    with pytest.raises(NotYet, match="Your first run was approved.*max_retries=0"):
        check("08.2", namespace, *retried, url=redis_url)


# ---------------------------------------------------------------- 11

PIPELINE = ("# Our deployment pipeline\n\nEvery merge to main triggers the deployment pipeline, which builds one "
            "container image and tags it with the commit hash.\n\nThe pipeline runs the unit tests and the integration "
            "tests in parallel; a failed stage stops the deployment before any server is touched.\n")
ROLLOUT = ("# Staged rollouts\n\nThe deployment pipeline releases a new image to 5% of servers first, waits 30 minutes "
           "while watching the error rate, then rolls out to the rest.\n\nIf the error rate of the canary servers "
           "rises above 2%, the pipeline rolls the deployment back automatically.\n")
ONCALL = ("On-call engineers get paged when an automatic rollback of the deployment pipeline happens, and they write "
          "a short incident note within two days.\n")
CANARY = ("# Canary monitoring\n\nDuring a rollout the canary servers are monitored for 30 minutes: the error rate, "
          "the p99 latency and the rate of failed health checks are compared with the rest of the fleet.\n")


def _docs(folder, **extra):
    """Notebook 11's documents in `folder`, with `extra` ones (relative path: text)."""
    (folder / "guides").mkdir(parents=True)
    for rel, text in {"pipeline.md": PIPELINE, "guides/rollout.md": ROLLOUT, "oncall.txt": ONCALL, **extra}.items():
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def _grounded_run(index, topic, run_id="g", researcher=None):
    from mas.tools import GroundedResearcherAgent, GroundedValidatorAgent

    client = make_client()
    with SQLiteMemory(":memory:") as memory:
        result = Orchestrator(memory, client=client, progress=None,
                              researcher=researcher or GroundedResearcherAgent(index, client=client),
                              validator=GroundedValidatorAgent(index, client=client)).run(
            topic, audience="new engineers", run_id=run_id)
        return result, memory.scoped(run_id).get("research")


@pytest.fixture(scope="module")
def docs_index(tmp_path_factory):
    from mas.search import DocumentIndex

    root = tmp_path_factory.mktemp("docs11")
    index = DocumentIndex(root / "index.db")
    index.add_folder(_docs(root / "docs", **{"canary.md": CANARY}))
    return index


CANARY_TOPIC = "How canary servers are monitored during a rollout"


def test_11_1_your_document_is_cited_right_and_wrong(docs_index, tmp_path, capsys):
    from mas.search import DocumentIndex

    canary_run, _ = _grounded_run(docs_index, CANARY_TOPIC)
    check("11.1", canary_run, docs_index, "canary")  # the notebook's answer
    assert "the approved report cites your document" in capsys.readouterr().out

    # right, written differently: another document, in a subfolder, on another question
    other = DocumentIndex(tmp_path / "other.db")
    other.add_folder(_docs(tmp_path / "docs", **{"guides/flags.md": (
        "# Feature flags\n\nEvery new feature ships behind a feature flag that is off by default.\n\nThe flag is "
        "turned on for internal users first, then for everyone once the error rate stays flat for a day.\n")}))
    assert "guides/flags" in other.document_ids()
    flags_run, _ = _grounded_run(other, "How feature flags roll out a new feature")
    check("11.1", flags_run, other, "guides/flags")

    # wrong: the document written, but the index not rebuilt
    stale = DocumentIndex(tmp_path / "stale.db")
    stale.add_folder(_docs(tmp_path / "stale"))
    with pytest.raises(NotYet, match=r"No document 'canary' in your index.*index.add_folder\(DOCS\).*oncall"):
        check("11.1", canary_run, stale, "canary")
    # wrong: a topic the new document does not answer: the report cites the others
    pipeline_run, _ = _grounded_run(docs_index, "How our deployment pipeline works", run_id="p")
    assert pipeline_run.status == "approved"
    with pytest.raises(NotYet, match=r"The report cites .*pipeline.*, not 'canary': ask about what your new"):
        check("11.1", pipeline_run, docs_index, "canary")
    # wrong: the course's researcher, which cites no passage of the index
    from mas.agents import ResearcherAgent

    plain, _ = _grounded_run(docs_index, CANARY_TOPIC, run_id="plain", researcher=ResearcherAgent(client=make_client()))
    with pytest.raises(NotYet, match="(cites no passage|ended as)"):
        check("11.1", plain, docs_index, "canary")
    # wrong: another index than the researcher's, which does not hold the passages the report cites
    only_canary = DocumentIndex(tmp_path / "only.db")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "canary.md").write_text(CANARY.replace("30 minutes", "an hour"), encoding="utf-8")
    only_canary.add_folder(tmp_path / "only")
    with pytest.raises(NotYet, match="which your index does not hold: pass the same index"):
        check("11.1", pipeline_run.model_copy(update={"report": canary_run.report + "\n(source: pipeline#1)"}),
              only_canary, "canary")
    with pytest.raises(NotYet, match="The run ended as 'failed'"):
        check("11.1", canary_run.model_copy(update={"status": "failed", "reason": "the writer refused"}), docs_index,
              "canary")


def _miscite_by_search(index, query):
    """The notebook's way: the first citation moved to a passage found by a search."""
    def miscite(report):
        cited = list(dict.fromkeys(CITATION.findall(report)))
        other = next(p.id for p in index.search(query, limit=5) if p.id not in cited[:1])
        return report.replace(f"(source: {cited[0]})", f"(source: {other})", 1)

    return miscite


def test_11_2_miscitation_caught_right_and_wrong(docs_index):
    from mas.tools import GroundedValidatorAgent

    result, research = _grounded_run(docs_index, "How our deployment pipeline works")
    assert result.status == "approved"
    report, validator = result.report, GroundedValidatorAgent(docs_index, client=make_client())
    check("11.2", _miscite_by_search(docs_index, "incident note on-call paged"), report, research, validator, docs_index)

    def last_to_another(report):  # right, written differently: the last citation, to a passage the report never cites
        *_, last = CITATION.finditer(report)
        other = next(pid for doc in docs_index.document_ids() for pid in [f"{doc}#1"]
                     if docs_index.passage(pid) and pid != last.group(1) and pid not in report)
        return report[:last.start()] + f"(source: {other})" + report[last.end():]

    check("11.2", last_to_another, report, research, validator, docs_index)

    with pytest.raises(NotYet, match="should return the report with one citation changed"):
        check("11.2", lambda r: r, report, research, validator, docs_index)
    with pytest.raises(NotYet, match="Change only a citation"):
        check("11.2", lambda r: r.replace("pipeline", "Pipeline", 1), report, research, validator, docs_index)
    first = CITATION.findall(report)[0]
    with pytest.raises(NotYet, match="nowhere#9 is no passage of the index"):
        check("11.2", lambda r: r.replace(f"(source: {first})", "(source: nowhere#9)", 1), report, research,
              validator, docs_index)

    def swap(report):  # two citations moved: the first two swapped (notebook 11's own demonstration)
        a, b = CITATION.findall(report)[:2]
        return report.replace(f"(source: {a})", "(source: @)").replace(f"(source: {b})", f"(source: {a})").replace(
            "(source: @)", f"(source: {b})")

    with pytest.raises(NotYet, match="miscite moved 2 citations: move one"):
        check("11.2", swap, report, research, validator, docs_index)

    def broken(report):
        return report.replace(CITATION.findall(report)[99], "x")

    with pytest.raises(NotYet, match="miscite\\(report\\) raised IndexError"):
        check("11.2", broken, report, research, validator, docs_index)

    class RejectsAll(GroundedValidatorAgent):  # a validator that approves nothing proves nothing
        def review(self, research, draft, attempts=3):
            return ValidationResult(issues=["no"], approved=False)

    with pytest.raises(NotYet, match="does not approve the report itself"):
        check("11.2", lambda r: r, report, research, RejectsAll(docs_index, client=make_client()), docs_index)
    with pytest.raises(NotYet, match="does not approve the report itself"):  # another run's research
        check("11.2", _miscite_by_search(docs_index, "incident"), report, "- nothing (source: oncall#1)", validator,
              docs_index)
    with pytest.raises(NotYet, match="Pass your function miscite"):
        check("11.2", report, report, research, validator, docs_index)


# ---------------------------------------------------------------- 12


@pytest.fixture(scope="module")
def limited():
    """Notebook 12's exercise run: the writer asked to stay under 400, 600 and 800 words, on every case."""
    from mas.evals import Variant, load_cases, run_eval

    cases = load_cases(NOTEBOOKS.parent / "evals" / "writer.jsonl")
    limits = [Variant(f"under-{n}", prompts={"writer": SYSTEM_PROMPTS["writer"] + f" Keep the whole draft under {n} "
                                                                                      "words."}) for n in (400, 600, 800)]
    return cases, run_eval(cases, limits, client=make_client(), concurrency=2)


def test_12_1_word_limit_variant_right_and_wrong(limited):
    from mas.evals import Variant, run_eval

    cases, results = limited
    passing = [s.variant for s in results.summaries() if s.passed == s.cases]
    assert passing == ["under-600", "under-800"]  # offline: under-400 cuts some cases' must_cover
    check("12.1", results, "under-600")
    # right, written differently: the limit in other words, and only the limits up to the answer
    worded = [Variant("under-400", prompts={"writer": SYSTEM_PROMPTS["writer"] + " No more than 400 words."}),
              Variant("under-600", prompts={"writer": SYSTEM_PROMPTS["writer"] + " At most 600 words in all."})]
    mine = run_eval(cases, worded, client=make_client(), concurrency=2)
    assert [s.passed == s.cases for s in mine.summaries()] == [False, True]
    check("12.1", mine, "under-600")

    with pytest.raises(NotYet, match="under-600 passes every case too, and its limit is smaller"):
        check("12.1", results, "under-800")  # passes, but not the smallest
    with pytest.raises(NotYet, match=r"2 of 10 case\(s\) still fail"):
        check("12.1", results, "under-400")
    with pytest.raises(NotYet, match="No variant 'under-500'"):
        check("12.1", results, "under-500")
    alone = run_eval(cases, [Variant("under-800", prompts={"writer": SYSTEM_PROMPTS["writer"] + " Under 800 words."})],
                     client=make_client(), concurrency=2)
    with pytest.raises(NotYet, match=r"is it the smallest\? Run the smaller limits too \(under-400, under-600\)"):
        check("12.1", alone, "under-800")
    from mas.evals import EvalResults

    few = run_eval(cases[:2], [Variant("under-600", prompts={"writer": SYSTEM_PROMPTS["writer"] + " Under 600 words."})],
                   client=make_client(), concurrency=2)
    four = [r for r in results.records if r.variant == "under-400"]
    mixed = EvalResults(four + few.records, [v for v in results.variants if v["variant"] == "under-400"] + few.variants)
    with pytest.raises(NotYet, match="under-400 ran on other cases than under-600: run every limit on the same cases"):
        check("12.1", mixed, "under-600")  # 2 easy cases for the answer, 10 for the limit below it
    course = run_eval(cases[:2], [Variant("under-600")], client=make_client(), concurrency=2)
    with pytest.raises(NotYet, match="writer prompt is the course's own"):
        check("12.1", course, "under-600")
    named = run_eval(cases[:2], [Variant("short", prompts={"writer": SYSTEM_PROMPTS["writer"] + " Under 900 words."})],
                     client=make_client(), concurrency=2)
    assert all(r.passed for r in named.of("short"))
    with pytest.raises(NotYet, match="Name each variant by its limit, under-N"):
        check("12.1", named, "short")


@pytest.fixture(scope="module")
def outcome_12():
    from mas.evals import Outcome, load_cases

    case = load_cases(NOTEBOOKS.parent / "evals" / "writer.jsonl")[0]
    with SQLiteMemory(":memory:") as memory:
        run = Orchestrator(memory, client=make_client(), progress=None).run(case.topic, case.audience, run_id="x")
        return Outcome(case, run, memory.scoped("x").get("research"))


def test_12_2_title_grader_right_and_wrong(outcome_12):
    from mas.evals import Grade

    def titled(outcome):  # the notebook's answer
        first = outcome.result.report.lstrip().splitlines()[0] if outcome.result.report.strip() else ""
        return Grade("titled", first.startswith("# "), float(first.startswith("# ")), "" if first else "no report")

    check("12.2", titled, outcome_12)

    def by_regex(outcome):  # right, written differently: a regex on the first line, a note when it fails
        ok = re.match(r"\s*# \S", outcome.result.report) is not None
        return Grade("has-title", ok, 1.0 if ok else 0.0, "" if ok else "the first line is no '# ' title")

    check("12.2", by_regex, outcome_12)

    def any_line(outcome):
        ok = re.search(r"^# ", outcome.result.report, re.M) is not None
        return Grade("titled", ok, float(ok))

    with pytest.raises(NotYet, match="passed a report whose title is its second line"):
        check("12.2", any_line, outcome_12)
    with pytest.raises(NotYet, match="passed a report with no title line"):
        check("12.2", lambda o: Grade("titled", "#" in o.result.report, 1.0), outcome_12)

    def crashes_on_empty(outcome):
        first = outcome.result.report.splitlines()[0]
        return Grade("titled", first.startswith("# "), float(first.startswith("# ")))

    with pytest.raises(NotYet, match="raised IndexError on an empty report"):
        check("12.2", crashes_on_empty, outcome_12)
    with pytest.raises(NotYet, match="returns a Grade.*not bool"):
        check("12.2", lambda o: o.result.report.startswith("# "), outcome_12)
    with pytest.raises(NotYet, match="the score 100"):
        check("12.2", lambda o: Grade("titled", True, 100), outcome_12)
    with pytest.raises(NotYet, match="failed a report that has a title"):
        check("12.2", lambda o: Grade("titled", False, 0.0, "never"), outcome_12)
    with pytest.raises(NotYet, match="Pass your grader function itself"):
        check("12.2", titled(outcome_12), outcome_12)
    with pytest.raises(NotYet, match="Pass an Outcome of a run whose report has a title"):
        check("12.2", titled, outcome_12.result)


# ---------------------------------------------------------------- 13


@pytest.fixture(scope="module")
def tutorial_13(tmp_path_factory):
    """Notebook 13's four files, written from its %%writefile cells into a temporary folder and imported from there
    as the notebook does (sys.path), with its team(writer_says) on the offline client; then forgotten again."""
    import importlib
    import sys
    from types import SimpleNamespace

    folder = tmp_path_factory.mktemp("tutorial")
    for cell in json.loads((NOTEBOOKS / "13_the_tutorials_four_files.ipynb").read_text(encoding="utf-8"))["cells"]:
        first, _, body = "".join(cell["source"]).partition("\n")
        if cell["cell_type"] == "code" and first.startswith("%%writefile data/13/tutorial/"):
            (folder / first.rsplit("/", 1)[1]).write_text(body + "\n", encoding="utf-8")
    names = ("memory", "agents", "orchestrator")
    before = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        modules = {name: importlib.import_module(name) for name in names}
        client = make_client()

        def team(writer_says=""):  # the notebook's
            writer = modules["agents"].Writer(client)
            writer.system += writer_says
            return modules["agents"].Researcher(client), writer, modules["agents"].Validator(client)

        yield SimpleNamespace(team=team, topic="How vector databases enable semantic search",
                              audience="senior software engineers", **modules)
    finally:
        sys.path.remove(str(folder))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(before)


class _JSONFileMemory:
    """Notebook 13's answer 1."""

    def __init__(self, path):
        self.path = Path(path)
        self._data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key, default=None):
        return self._data.get(key, default)

    def set(self, key, value):
        self._data[key] = value
        self.path.write_text(json.dumps(self._data))

    def items(self, prefix=""):
        return {key: value for key, value in self._data.items() if key.startswith(prefix)}


def _two_runs_13(tutorial, memory_class, path, second_class=None):
    """The exercise's two runs, each from a new memory object on `path`, with new agents: (result, calls) each."""
    def run_on_file(cls):
        crew = tutorial.team()
        result = tutorial.orchestrator.Orchestrator(cls(path), *crew, say=lambda line: None).run(
            tutorial.topic, tutorial.audience, "json-file")
        return result, sum(agent.calls for agent in crew)

    return run_on_file(memory_class), run_on_file(second_class or memory_class)


def test_13_1_json_file_memory_right_and_wrong(tutorial_13, tmp_path, capsys):
    first, second = _two_runs_13(tutorial_13, _JSONFileMemory, tmp_path / "memory.json")
    assert first[1] == 5 and second[1] == 0 and first[0]["status"] == "approved"
    check("13.1", _JSONFileMemory, first, second)
    assert capsys.readouterr().out.startswith("✓ 13.1: _JSONFileMemory gets, sets and lists by prefix")

    class ReadsEveryTime:  # right, written differently: no cache, the file read on every get, json.dump/json.load
        def __init__(self, path):
            self.path = str(path)

        def _load(self):
            try:
                with open(self.path, encoding="utf-8") as f:
                    return json.load(f)
            except FileNotFoundError:
                return {}

        def get(self, key, default=None):
            return self._load().get(key, default)

        def set(self, key, value):
            data = self._load()
            data[key] = value
            with open(self.path, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)

        def items(self, prefix=""):
            return dict(item for item in self._load().items() if item[0][:len(prefix)] == prefix)

    check("13.1", ReadsEveryTime, *_two_runs_13(tutorial_13, ReadsEveryTime, tmp_path / "every.json"))

    class FileDict(tutorial_13.memory.DictMemory):  # right, written differently: the tutorial's DictMemory, saved
        def __init__(self, path):
            super().__init__()
            self.file = Path(path)
            if self.file.is_file():
                self._data.update(json.loads(self.file.read_text(encoding="utf-8")))

        def set(self, key, value):
            super().set(key, value)
            self.file.write_text(json.dumps(self._data, ensure_ascii=False), encoding="utf-8")

    check("13.1", FileDict, *_two_runs_13(tutorial_13, FileDict, tmp_path / "dict.json"))

    # wrong: an object, not the class
    with pytest.raises(NotYet, match="Pass your class itself, JSONFileMemory, not an object of it"):
        check("13.1", _JSONFileMemory(tmp_path / "x.json"), first, second)

    # wrong: kept in a dict only, no file
    class NoFile(tutorial_13.memory.DictMemory):
        def __init__(self, path):
            super().__init__()

    with pytest.raises(NotYet, match="After set\\(\\), there is no file at the path NoFile was given"):
        check("13.1", NoFile, first, second)

    class ReadsAlways(_JSONFileMemory):  # wrong: the file must exist
        def __init__(self, path):
            self.path = Path(path)
            self._data = json.loads(self.path.read_text())

    with pytest.raises(NotYet, match="^ReadsAlways\\(path\\) on a file that does not exist yet raised "
                                     "FileNotFoundError"):
        check("13.1", ReadsAlways, first, second)

    class Contains(_JSONFileMemory):  # wrong: the prefix anywhere in the key
        def items(self, prefix=""):
            return {key: value for key, value in self._data.items() if prefix in key}

    with pytest.raises(NotYet, match="items\\('run_a/'\\) gave the keys .*'xrun_a/draft_1'.*str.startswith"):
        check("13.1", Contains, first, second)

    class Keys(_JSONFileMemory):  # wrong: a list of keys
        def items(self, prefix=""):
            return [key for key in self._data if key.startswith(prefix)]

    with pytest.raises(NotYet, match="items\\(prefix\\) should return a dict \\{key: value\\}, not list"):
        check("13.1", Keys, first, second)

    class Strings(_JSONFileMemory):  # wrong: str(value), not the value
        def set(self, key, value):
            super().set(key, str(value))

    with pytest.raises(NotYet, match="a verdict \\(a dict\\) should come back as the dict it was"):
        check("13.1", Strings, first, second)

    class LastKeyOnly(_JSONFileMemory):  # wrong: the file holds the last set() only
        def set(self, key, value):
            self._data[key] = value
            self.path.write_text(json.dumps({key: value}))

    with pytest.raises(NotYet, match="A new LastKeyOnly on the same file does not see what the first one set"):
        check("13.1", LastKeyOnly, first, second)

    class FirstObjectOnly(_JSONFileMemory):  # wrong: a second object starts empty, and overwrites the file
        def __init__(self, path):
            self.path, self._data = Path(path), {}

    with pytest.raises(NotYet, match="does not see what the first one set.*read the file in __init__"):
        check("13.1", FirstObjectOnly, first, second)

    # wrong runs: the second on a fresh dict (not the file), the first on a leftover file, the results alone
    fresh = _two_runs_13(tutorial_13, _JSONFileMemory, tmp_path / "fresh.json",
                         second_class=lambda path: tutorial_13.memory.DictMemory())
    with pytest.raises(NotYet, match="Your second run asked the model 5 time\\(s\\): run it with the same run_id"):
        check("13.1", _JSONFileMemory, *fresh)
    with pytest.raises(NotYet, match="Your first run made 0 call\\(s\\).*unlink it first"):
        check("13.1", _JSONFileMemory, second, second)
    with pytest.raises(NotYet, match="Pass each run as \\(result, calls\\)"):
        check("13.1", _JSONFileMemory, first[0], second[0])
    with pytest.raises(NotYet, match="The second run returned another report than the first"):
        check("13.1", _JSONFileMemory, first, ({**second[0], "report": "# Another"}, 0))


def _fixed_loop(researcher, writer, validator, topic, audience, cycles=3):
    """Notebook 13's answer 2."""
    research = researcher.research(topic, audience)
    draft = writer.write(topic, audience, research)
    validations = 0
    for cycle in range(cycles + 1):
        verdict = validator.validate(research, draft)
        validations += 1
        if verdict["approved"] or cycle == cycles:
            break
        draft = writer.revise(topic, audience, research, draft, verdict["issues"])
    return draft, validations, verdict["approved"]


def _tutorial_loop(researcher, writer, validator, topic, audience, cycles=3):
    """Notebook 13's tutorial_loop: the last revision is never validated."""
    research = researcher.research(topic, audience)
    draft = writer.write(topic, audience, research)
    validations = 0
    for _ in range(cycles):
        verdict = validator.validate(research, draft)
        validations += 1
        if verdict["approved"]:
            break
        draft = writer.revise(topic, audience, research, draft, verdict["issues"])
    return draft, validations, verdict["approved"]


def test_13_2_fixed_loop_right_and_wrong(tutorial_13, capsys):
    team = tutorial_13.team
    check("13.2", _fixed_loop, team)
    assert capsys.readouterr().out == ("✓ 13.2: the stubborn writer: 4 validations, the last of the 3rd revision, "
                                       "returned as not approved; the usual writer: approved at validation 2; "
                                       "cycles=1: 2 validations\n")

    def one_more(researcher, writer, validator, topic, audience, cycles=3):
        """Right, written differently: the tutorial's loop unchanged, and one validation after it when it ended on
        a revision."""
        research = researcher.research(topic, audience)
        draft = writer.write(topic, audience, research)
        validations = 0
        for _ in range(cycles):
            verdict = validator.validate(research, draft)
            validations += 1
            if verdict["approved"]:
                break
            draft = writer.revise(topic, audience, research, draft, verdict["issues"])
        else:  # no break: the last step was a revision, so read it too
            verdict = validator.validate(research, draft)
            validations += 1
        return draft, validations, verdict["approved"]

    check("13.2", one_more, team)

    def with_while(researcher, writer, validator, topic, audience, max_cycles=3):
        """Right, written differently: a while loop on a list of verdicts, another name for the limit."""
        research = researcher.research(topic, audience)
        draft, verdicts = writer.write(topic, audience, research), []
        while True:
            verdicts.append(validator.validate(research, draft))
            if verdicts[-1]["approved"] or len(verdicts) > max_cycles:
                return draft, len(verdicts), verdicts[-1]["approved"]
            draft = writer.revise(topic, audience, research, draft, verdicts[-1]["issues"])

    check("13.2", with_while, team)

    # wrong: the tutorial's loop as it is
    with pytest.raises(NotYet, match="3 validations and 3 revisions: it still ends on a revision nobody validated"):
        check("13.2", _tutorial_loop, team)

    def revises_at_the_limit(researcher, writer, validator, topic, audience, cycles=3):
        research = researcher.research(topic, audience)
        draft = writer.write(topic, audience, research)
        for validations in range(1, cycles + 2):
            verdict = validator.validate(research, draft)
            if verdict["approved"]:
                break
            draft = writer.revise(topic, audience, research, draft, verdict["issues"])  # also after the 4th
        return draft, validations, verdict["approved"]

    with pytest.raises(NotYet, match="The writer wrote 5 drafts for 4 validations"):
        check("13.2", revises_at_the_limit, team)

    def fixed_three(researcher, writer, validator, topic, audience, cycles=3):
        return _fixed_loop(researcher, writer, validator, topic, audience)  # cycles ignored

    with pytest.raises(NotYet, match="With cycles=1 your loop made 4 validations: use the cycles argument"):
        check("13.2", fixed_three, team)

    def says_approved(*args):
        draft, validations, _ = _fixed_loop(*args)
        return draft, validations, True

    with pytest.raises(NotYet, match="Your loop says approved, but no verdict approved"):
        check("13.2", says_approved, team)

    def no_break(researcher, writer, validator, topic, audience, cycles=3):
        research = researcher.research(topic, audience)
        draft = writer.write(topic, audience, research)
        for cycle in range(cycles + 1):
            verdict = validator.validate(research, draft)
            if cycle < cycles:
                draft = writer.revise(topic, audience, research, draft, verdict["issues"])
        return draft, cycles + 1, verdict["approved"]

    with pytest.raises(NotYet, match="validation 2 approved the draft, but your loop went on.*stop at the first"):
        check("13.2", no_break, team)

    def counts_revisions(*args):
        draft, validations, approved = _fixed_loop(*args)
        return draft, validations - 1, approved

    with pytest.raises(NotYet, match="says 3 validation\\(s\\), but the validator was asked 4 time\\(s\\)"):
        check("13.2", counts_revisions, team)

    def one_too_many(researcher, writer, validator, topic, audience, cycles=3):
        return _fixed_loop(researcher, writer, validator, topic, audience, cycles + 1)

    with pytest.raises(NotYet, match="With the stubborn writer your loop made 5 validations"):
        check("13.2", one_too_many, team)
    with pytest.raises(NotYet, match="should return \\(draft, validations, approved\\).*returned str"):
        check("13.2", lambda *args: _fixed_loop(*args)[0], team)
    with pytest.raises(NotYet, match="Pass the notebook's team function itself \\(team, not team\\(\\)\\)"):
        check("13.2", _fixed_loop, team())
    with pytest.raises(NotYet, match="Pass your loop function itself, fixed_loop"):
        check("13.2", _fixed_loop(*team(), tutorial_13.topic, tutorial_13.audience), team)


# ---------------------------------------------------------------- 04-10: right answers written differently


def test_04_right_answers_written_differently():
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field, conlist

    class StrictDraft(BaseModel):  # strict types, constraints as Annotated and conlist
        model_config = ConfigDict(extra="forbid", strict=True)

        title: Annotated[str, Field(min_length=1)]
        sections: conlist(str, min_length=1)

    check("04.1", StrictDraft, *_ask_writer(StrictDraft, [FENCED, json.dumps(ANSWER)]))
    script = ScriptedTransport([json.dumps({"title": "Vector search", "sections": []})] * 2)
    with pytest.raises(Exception) as caught:  # caught more broadly than the notebook's `except ContractError`
        WriterAgent(client=make_client(transport=script)).ask(write_task(TOPIC, "engineers", "- a point"), StrictDraft,
                                                              attempts=2)
    check("04.2", StrictDraft, caught.value, len(script.requests))


def test_05_right_answers_written_differently():
    from dataclasses import dataclass, field

    from mas.contracts import Usage
    from mas.failures import CircuitBreaker, Fallback, Resilient, Retry
    from mas.prompts import bullets, tag

    @dataclass
    class NumberedWriter:  # a dataclass, its points numbered under a section heading
        name: str = "Numbered writer"
        usage: Usage = field(default_factory=Usage)

        def reset(self):
            pass

        def run(self, task):
            points = bullets(tag(task, "research") or "")
            return f"# {tag(task, 'topic')}\n\n## Key points\n\n" + "\n".join(
                f"{i}. {p}" for i, p in enumerate(points, 1))

    check("05.1", (Fallback(agent=NumberedWriter()),))  # a tuple, not a list
    validator = Resilient(ValidatorAgent(client=make_client()), (Retry(3),),
                          breaker=CircuitBreaker(max_failures=2, reset_after=60))
    check("05.2", validator)


def test_06_right_answers_written_differently():
    check("06.1", _parallel(["costs", *ANGLES], 8))  # the new angle first, more slots than angles
    check("06.2", _parallel(list(reversed(ANGLES)), 1), 2.9)  # the figure unrounded


def test_07_right_answers_written_differently(traced_run):
    from mas.agents import ResearcherAgent
    from mas.pricing import price
    from mas.tracing import Tracer

    groups = traced_run.by("agent")
    top = sorted(groups, key=lambda name: groups[name].cost)[-1]
    check("07.1", traced_run, top, groups[top].cost / sum(g.cost for g in groups.values()))  # sorted, summed by hand
    with Tracer() as tracer:
        ResearcherAgent(client=make_client(), model="claude-haiku-5-5").run(f"<topic>{TOPIC}</topic>")
    rates = {"claude-haiku-5-5": price(0.1, 0.5)}  # positional, in a dict of its own
    tracer.reprice(rates)
    check("07.2", tracer)


def test_09_right_answers_written_differently():
    from mas.hierarchy import ResearchTeam

    with SQLiteMemory(":memory:") as memory:  # another topic of the offline model's notes
        free = Orchestrator(memory, client=make_client(), progress=None).run("Prompt caching", run_id="free")
    from mas.budget import Budget

    def run(max_calls):
        transport = OfflineTransport()
        with Budget(max_calls=max_calls), SQLiteMemory(":memory:") as memory:
            result = Orchestrator(memory, client=make_client(transport=transport), progress=None).run(
                "Prompt caching", run_id="b")
        return result, transport.model.calls

    (enough, _), (short, sent) = run(free.usage.calls), run(free.usage.calls - 1)
    check("09.1", free.usage.calls, enough, short, sent)

    def recursive(levels, client):  # built from the bottom by recursion, with angles of its own
        inner = [] if levels == 1 else [recursive(levels - 1, client)]
        return ResearchTeam([f"level {levels}", *inner], angle="depth", client=client)

    from mas.errors import DepthLimitExceeded
    from mas.exercises.core import offline_client
    from mas.hierarchy import DEFAULT_MAX_DEPTH

    refused = DEFAULT_MAX_DEPTH + 1
    transport, client = offline_client()
    recursive(refused - 1, client).run(research_task("Prompt caching", "engineers"))
    with pytest.raises(DepthLimitExceeded):
        recursive(refused, offline_client()[1]).run(research_task("Prompt caching", "engineers"))
    check("09.2", recursive, refused, transport.model.calls)


def test_10_right_answers_written_differently():
    widgets = pytest.importorskip("mas.widgets")
    from mas.tracing import Tracer

    playground = widgets.Playground(show_time=False)
    playground.max_tokens.value = 150  # a tighter limit still, and the request in other words
    playground.system.value = SYSTEM_PROMPTS["researcher"] + " Give exactly 2 bullets, no sources."
    check("10.1", playground)
    with Tracer() as tracer:
        Orchestrator(SQLiteMemory(":memory:"), progress=None).run(TOPIC, run_id="t")
    costliest = sorted(tracer.spans, key=lambda s: s.cost)[-1]
    check("10.2", tracer, costliest.agent, int(costliest.index))


def test_learner_code_that_raises_gets_one_line_not_a_traceback(monkeypatch):
    class Typo(_Keys):
        def keys(self, prefix=""):
            return [k for (k,) in self.conn.execute("SELECT key FROM memroy ORDER BY key")]

    with pytest.raises(NotYet, match=r"^keys\('run_1/'\) raised OperationalError: no such table: memroy$"):
        check("01.2", Typo)
    with pytest.raises(NotYet, match=r"^_Keys\(path\) raised TypeError"):
        check("01.2", type("_Keys", (_Keys,), {"__init__": lambda self: None}))  # takes no path

    monkeypatch.setitem(SYSTEM_PROMPTS, "summarizer", SUMMARIZER)

    class Crashes(BaseAgent):
        role = "summarizer"

        def run(self, task):
            raise RuntimeError("not written yet")

    with pytest.raises(NotYet, match=r"^Crashes.run\(task\) raised RuntimeError: not written yet$"):
        check("02.1", Crashes, "summarizer")

    research, faithful = _research_and_faithful_draft()

    class Unfinished(_StrictValidator):
        def review(self, research, draft, attempts=3):
            return super().review(research, draft, attempts).isssues

    with pytest.raises(NotYet, match=r"^review\(research, draft\) raised AttributeError: .*isssues"):
        check("02.2", Unfinished, research, faithful)

    def no_client(levels):  # forgot the client argument
        return _chain(levels, make_client())

    with pytest.raises(NotYet, match=r"^chain\(1, client\) raised TypeError"):
        check("09.2", no_client, 4, 3)
