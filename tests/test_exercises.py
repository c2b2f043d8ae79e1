"""The exercises' checks: they pass a right answer and give a specific hint on a wrong one."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from mas.agents import BaseAgent, ValidatorAgent, WriterAgent
from mas.client import make_client
from mas.contracts import ValidationResult
from mas.exercises import NotYet, check, solution
from mas.memory import SQLiteMemory
from mas.offline import Fault, OfflineTransport
from mas.orchestrator import Orchestrator
from mas.prompts import SYSTEM_PROMPTS, write_task

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

    lost = faithful.replace(SOURCE_POINT.findall(research)[1].rsplit(" (source:", 1)[1], ")")
    with pytest.raises(NotYet, match="has lost 1 of the research's source notes"):
        check("02.2", _StrictValidator, research, lost)


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
