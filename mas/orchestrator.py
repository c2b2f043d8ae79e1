"""The orchestrator: research -> write -> validate -> (revise -> validate)* -> report.

It never does the work itself: it keeps the state and delegates each step to an agent. Every
result is saved in memory, under the run's namespace, *before* the next step starts:

    topic, audience          the run's inputs
    research                 the researcher's notes
    draft_1, draft_2, ...    each version of the draft
    validation_1, ...        the validator's verdict on each draft (JSON)
    issues                   the last verdict's issues (JSON list); at the limit, the returned draft's
    status, reason           where the run is, and why it stopped
    usage                    tokens and calls so far (JSON)
    report                   the final report (approved, or the best draft at the revision limit)

So a run can be read back step by step after it ends or crashes, and `run(..., run_id=...)`
resumes it: a step whose result is in memory is not asked again.

Limits, all explicit: `max_revision_cycles` revisions at most (the circuit breaker returns the
best draft so far, with the remaining issues and the reason, instead of looping); the
validator's unreadable answers are re-asked `validation_attempts` times at most, then the run
stops as `failed` with the reason; an API error that outlives the SDK's retries also stops the
run as `failed` (resumable), never as an exception that leaves memory half-written.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable

import anthropic

from mas.agents import VALIDATION_ATTEMPTS, BaseAgent, ResearcherAgent, ValidatorAgent, WriterAgent
from mas.client import default_model, make_client
from mas.contracts import CheckedVerdict, RunResult, Usage, ValidationResult, dump_json
from mas.errors import AgentReplyError, AwaitingBatch, NoResearch, RunStopped, one_line
from mas.memory import LEASE_TTL_S, Lease, Memory, SQLiteMemory
from mas.prompts import DEFAULT_AUDIENCE, NO_RESEARCH, is_no_research, research_task, revise_task, write_task

TERMINAL = ("approved", "max_cycles")


class Orchestrator:
    def __init__(self, memory: Memory | None = None, client: anthropic.Anthropic | None = None,
                 max_revision_cycles: int = 3, *, model: str | None = None, max_tokens: int = 2048,
                 validation_attempts: int = VALIDATION_ATTEMPTS, progress: Callable[[str], None] | None = print,
                 researcher: ResearcherAgent | None = None, writer: WriterAgent | None = None,
                 validator: ValidatorAgent | None = None, lease_ttl: float = LEASE_TTL_S):
        if max_revision_cycles < 0:
            raise ValueError(f"max_revision_cycles must be >= 0, got {max_revision_cycles}")
        if validation_attempts < 1:
            raise ValueError(f"validation_attempts must be >= 1, got {validation_attempts}")
        self.max_revision_cycles = max_revision_cycles
        self.validation_attempts = validation_attempts
        self.lease_ttl = lease_ttl
        self.progress = progress
        # What the orchestrator creates itself, it closes (`close()`, or `with Orchestrator() as o:`).
        self._owned: list = []
        if memory is None:
            memory = SQLiteMemory()
            self._owned.append(memory)
        self.memory = memory
        if client is None and None in (researcher, writer, validator):
            client = make_client()  # one client for the whole team: one connection pool, one fault plan
            self._owned.append(client)
        model = model or default_model()
        self.researcher = researcher or ResearcherAgent(client=client, model=model, max_tokens=max_tokens)
        self.writer = writer or WriterAgent(client=client, model=model, max_tokens=max_tokens)
        self.validator = validator or ValidatorAgent(client=client, model=model, max_tokens=max_tokens)

    def close(self) -> None:
        """Close the memory and the client this orchestrator created (not ones passed in)."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, topic: str | None = None, audience: str = DEFAULT_AUDIENCE, run_id: str | None = None) -> RunResult:
        """Run the pipeline on `topic`, or resume the run `run_id` where it stopped.

        The run is leased first: while another process runs it, this one raises `RunBusy` and
        touches nothing."""
        run_id = run_id or f"run-{os.urandom(4).hex()}"  # 8 hex digits, as uuid4's first, without building a UUID
        scope = self.memory.scoped(run_id)
        with Lease(scope, self.lease_ttl) as lease:
            mem = _Run(scope, lease)
            stored_topic = mem.get("topic")
            if stored_topic is None:
                if not topic:
                    raise ValueError(f"run {run_id!r} is not in memory, so a topic is needed to start it")
                mem.set_many({"topic": topic, "audience": audience, "status": "researching"})
                self._say(f"[Orchestrator] Run {run_id}: {topic}")
            else:
                if topic and topic != stored_topic:
                    raise ValueError(f"run {run_id!r} is about {stored_topic!r}, not {topic!r}: "
                                     "use a new run_id for a new topic")
                topic, audience = stored_topic, mem.get("audience") or audience
                self._say(f"[Orchestrator] Resuming run {run_id} ({mem.get('status') or 'started'}): {topic}")
            saved_usage = mem.get("usage")
            usage = Usage.model_validate_json(saved_usage) if saved_usage else Usage()
            if mem.get("status") in TERMINAL:
                return self._result(mem, run_id, usage)
            try:
                self._pipeline(mem, topic, audience, usage)
            except (anthropic.AnthropicError, AgentReplyError, RunStopped) as err:  # the SDK's, a replay's NotInRecording
                mem.set_many({"status": err.status if isinstance(err, RunStopped) else "failed",
                              "reason": one_line(err)})
                after = ("no draft was written: try a topic the researcher knows" if isinstance(err, NoResearch)
                         else f"resume with run_id={run_id!r}")
                self._say(f"[Orchestrator] Stopped: {one_line(err)} ({after})")
            return self._result(mem, run_id, usage)

    # ------------------------------------------------------------------ the steps

    def _pipeline(self, mem: _Run, topic: str, audience: str, usage: Usage) -> None:
        research = self._step(mem, "research", "researching", "Researcher", usage, self.researcher,
                              lambda: self.researcher.run(research_task(topic, audience)),
                              then=lambda notes: {"status": "no_research" if is_no_research(notes) else "writing"})
        if is_no_research(research):
            said = research.strip().splitlines()[0].strip()[len(NO_RESEARCH):].strip()
            raise NoResearch(f"the researcher has nothing on this topic: {said or 'it said so, with no reason'}")
        self._step(mem, "draft_1", "writing", "Writer", usage, self.writer,
                   lambda: self.writer.run(write_task(topic, audience, research)),
                   then=lambda _: {"status": "validating"})
        cycle = 1
        while True:
            draft = mem.get(f"draft_{cycle}")
            mem.drop_stale_verdict(cycle, draft)
            self._step(mem, f"validation_{cycle}", "validating", "Validator", usage, self.validator,
                       lambda: CheckedVerdict.of(self.validator.review(research, draft, self.validation_attempts),
                                                 draft),
                       then=lambda verdict: self._outcome(mem, cycle, verdict))
            if mem.get("status") in TERMINAL:
                self._say(f"[Orchestrator] Done: {mem.get('reason')}")
                return
            issues = mem.verdict(cycle).issues
            self._say(f"[Orchestrator] Revision {cycle} of at most {self.max_revision_cycles}: "
                      f"sending {len(issues)} issue(s) back to the Writer")
            self._step(mem, f"draft_{cycle + 1}", "revising", "Writer", usage, self.writer,
                       lambda: self.writer.run(revise_task(topic, audience, research, draft, issues)),
                       then=lambda _: {"status": "validating"})
            cycle += 1

    def _step(self, mem: _Run, key: str, status: str, who: str, usage: Usage, agent: BaseAgent,
              work: Callable[[], Any], then: Callable[[Any], dict[str, str]]) -> Any:
        """One checkpointed step: the agent's result, saved at once; or the saved one, not asked again
        (a verdict is saved as its JSON, and returned as the `ValidationResult` itself).

        One write a step, one transaction: the result, the usage and `then(result)`, what the run
        says next (the next step's status, or how the run ended). A step's status is written before
        its call only when the run's last write did not already say it (a resumed run); a failed
        call saves its usage alone."""
        saved = mem.get(key)
        if saved is not None:
            self._say(f"[Orchestrator] {key}: already in memory, not asked again")
            after = then(saved)
            if after["status"] in TERMINAL and mem.get("status") != after["status"]:
                mem.set_many(after)  # a verdict saved without the run's end (an older mas wrote them apart)
            return saved
        if mem.get("status") != status:
            mem.set_many({"status": status})
        self._say(f"[Orchestrator] Dispatching to {who}...")
        agent.reset()  # each task carries everything it needs: no history from earlier steps
        before = agent.usage.counts()
        try:
            result = work()
        except AwaitingBatch:
            raise  # the step is asked again whole once its answer is in (mas.batches): its calls count then
        except BaseException:
            usage.add_since(agent.usage, before)  # the failed step's calls count too
            mem.set_many({"usage": dump_json(usage)})
            raise
        usage.add_since(agent.usage, before)
        text = dump_json(result) if isinstance(result, ValidationResult) else result
        after = then(result)
        mem.set_many({"usage": dump_json(usage), key: text, **after})  # the status last
        if self.progress is not None:
            self._say(_done_line(who, key, result))
        return result

    def _outcome(self, mem: _Run, cycle: int, verdict: ValidationResult | str) -> dict[str, str]:
        """What the verdict on draft `cycle` makes of the run: approved, stopped at the revision
        limit with its best draft, or on to a revision."""
        verdict = mem.verdict(cycle, verdict)
        issues = _json_list(verdict.issues)
        if verdict.approved and verdict.judged(mem.get(f"draft_{cycle}")):
            return {"issues": issues, "report": mem.get(f"draft_{cycle}"),
                    "reason": f"approved after {cycle - 1} revision(s)", "status": "approved"}
        if cycle > self.max_revision_cycles:
            best = _best_draft(mem, cycle)
            return {"issues": _json_list(mem.verdict(best).issues), "report": mem.get(f"draft_{best}"),
                    "reason": f"not approved after {self.max_revision_cycles} revision(s) (the limit); "
                              f"returning draft {best} of {cycle}, which had the fewest issues",
                    "status": "max_cycles"}
        return {"issues": issues, "status": "revising"}

    def _result(self, mem: _Run, run_id: str, usage: Usage) -> RunResult:
        """The run as it stands. Only a finished run has a report (approved, or the best draft at the revision
        limit); a run that stopped has its latest draft as `draft`, never as the report."""
        status = mem.get("status") or "failed"
        drafts = sorted(int(m[1]) for k in mem.saved if (m := _DRAFT_KEY.fullmatch(k)))
        last = mem.get(f"draft_{drafts[-1]}") if drafts else ""
        report = (mem.get("report") or last) if status in TERMINAL else ""
        report_draft = max((n for n in drafts if mem.get(f"draft_{n}") == report), default=0) if report else 0
        return RunResult(run_id=run_id, topic=mem.get("topic") or "", report=report, approved=status == "approved",
                         cycles=max(drafts, default=1) - 1, issues=_load_list(mem.get("issues")), status=status,
                         reason=mem.get("reason") or "", usage=usage, draft=last, report_draft=report_draft)

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)


def _done_line(who: str, key: str, result: str | ValidationResult) -> str:
    if isinstance(result, ValidationResult):
        verdict = result
        return f"[Validator] {'Approved' if verdict.approved else f'{len(verdict.issues)} issue(s): not approved'}"
    label = "Research" if key == "research" else f"Draft {key.split('_')[1]}"
    return f"[{who}] {label} complete ({len(result)} chars)"


def _best_draft(mem: _Run, last: int) -> int:
    """The draft with the fewest issues (the latest of equals): what the circuit breaker returns."""
    counts = {n: len(mem.verdict(n).issues) for n in range(1, last + 1)}
    return min(counts, key=lambda n: (counts[n], -n))


_DRAFT_KEY = re.compile(r"draft_(\d{1,9})")  # draft_1, draft_2, ...; not another part's `draft_review`


class _Run:
    """One run's memory, read once: every checkpoint of the run is loaded when it starts, and every
    write goes to the memory at once (once the run's lease is renewed) and to this copy, so the run
    never reads its own writes back. Verdicts are kept as `CheckedVerdict`s too, parsed at most once."""

    def __init__(self, memory: Memory, lease: Lease):
        self.memory, self.lease, self.saved = memory, lease, memory.get_all()
        self._verdicts: dict[int, CheckedVerdict] = {}

    def get(self, key: str) -> str | None:
        return self.saved.get(key)

    def set_many(self, items: dict[str, str]) -> None:
        self.lease.renew()
        self.memory.set_many(items)
        self.saved.update(items)

    def verdict(self, cycle: int, given: CheckedVerdict | str | None = None) -> CheckedVerdict | None:
        """The verdict on draft `cycle`: `given` when it was just made, else the saved one (parsed once)."""
        if isinstance(given, CheckedVerdict):
            self._verdicts[cycle] = given
        if cycle not in self._verdicts:
            text = self.saved.get(f"validation_{cycle}")
            if text is None:
                return None
            self._verdicts[cycle] = CheckedVerdict.model_validate_json(text)
        return self._verdicts[cycle]

    def drop_stale_verdict(self, cycle: int, draft: str | None) -> None:
        """Forget a saved verdict that is not about `draft` (another process wrote the draft over, or an
        older mas saved it unbound), so the draft is validated again."""
        verdict = self.verdict(cycle)
        if verdict is not None and not verdict.judged(draft):
            del self.saved[f"validation_{cycle}"]
            del self._verdicts[cycle]


def _json_list(items: list[str]) -> str:
    return _LIST_ENCODER.encode(items)


_LIST_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps(items, ensure_ascii=False), without a new encoder each time


def _load_list(text: str | None) -> list[str]:
    return json.loads(text) if text else []
