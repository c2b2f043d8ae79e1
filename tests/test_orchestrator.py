"""The orchestrator end to end offline: checkpoints, resume after a crash at every step, the
circuit breaker, strict verdicts, flat validator tokens, Redis memory, and the command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from mas.budget import Budget
from mas.cli import main as cli
from mas.client import make_client
from mas.contracts import CheckedVerdict
from mas.hooks import call_hook
from mas.memory import SQLiteMemory
from mas.offline import Fault, OfflineTransport, ScriptedTransport
from mas.offline.prose import bullets_of
from mas.orchestrator import Orchestrator
from mas.scaling import RedisMemory

TOPIC = "How vector databases enable semantic search"
STEPS = ["research", "draft_1", "validation_1", "draft_2", "validation_2"]  # one model call each, offline
HERE = Path(__file__).parent


def orchestrate(memory, transport=None, **kw):
    transport = transport or OfflineTransport()
    kw.setdefault("progress", None)
    return transport, Orchestrator(memory, client=make_client(transport=transport, max_retries=0), **kw)


def test_the_pipeline_offline_catches_the_first_drafts_flaw_and_approves_the_revision(memory):
    lines = []
    transport, orch = orchestrate(memory, progress=lines.append)
    result = orch.run(TOPIC, audience="senior software engineers", run_id="r1")
    assert (result.status, result.approved, result.cycles, result.issues) == ("approved", True, 1, [])
    assert transport.model.calls == len(STEPS) == result.usage.calls
    research = bullets_of(memory.scoped("r1").get("research"))
    assert all(point.split(" (source:")[0] in result.report for point in research)  # draft 1 left one out
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert "[Orchestrator] Dispatching to Researcher..." in lines
    assert any(line.startswith("[Writer] Draft 1 complete (") for line in lines)
    assert "[Validator] 2 issue(s): not approved" in lines


def test_every_step_is_saved_under_the_runs_namespace(memory):
    orchestrate(memory)[1].run(TOPIC, run_id="r1")
    run = memory.scoped("r1")
    assert set(STEPS) | {"topic", "audience", "issues", "status", "reason", "usage", "report"} == set(run.get_all())
    first = CheckedVerdict.model_validate_json(run.get("validation_1"))
    left_out = [p for p in bullets_of(run.get("research")) if p.split(" (source:")[0] not in run.get("draft_1")]
    assert not first.approved and any(p.split(" (source:")[0] in issue for p in left_out for issue in first.issues)
    assert run.get("report") == run.get("draft_2") and run.get("status") == "approved"
    assert memory.get("research") is None  # nothing leaks outside the run's namespace


def test_two_runs_in_one_database_do_not_clobber_each_other(memory):
    _, orch = orchestrate(memory)
    a = orch.run(TOPIC, run_id="a")
    b = orch.run("Multi-agent LLM systems", run_id="b")
    assert memory.scoped("a").get("report") == a.report != b.report == memory.scoped("b").get("report")


@pytest.mark.parametrize("failing_step", range(len(STEPS)))
def test_resume_after_a_failure_at_each_step_reissues_no_completed_call(memory, failing_step):
    faulty = OfflineTransport(faults=[Fault("server_error", call=failing_step + 1)])
    failed = orchestrate(memory, faulty)[1].run(TOPIC, run_id="r")
    assert failed.status == "failed" and "InternalServerError 500" in failed.reason
    assert set(memory.scoped("r").get_all()) >= set(STEPS[:failing_step])
    resumed_transport, orch = orchestrate(memory)
    result = orch.run(run_id="r")
    assert resumed_transport.model.calls == len(STEPS) - failing_step
    assert result.status == "approved" and result.usage.calls == len(STEPS)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
@pytest.mark.parametrize("kill_after", range(1, len(STEPS)))
def test_resume_after_the_process_is_killed_after_each_step(tmp_path, kill_after):
    db = tmp_path / "memory.db"
    proc = subprocess.run([sys.executable, str(HERE / "crash_worker.py"), str(db), "r", str(kill_after)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with SQLiteMemory(db) as mem:
        assert mem.scoped("r").get("status") != "approved"
        transport, orch = orchestrate(mem)
        result = orch.run(run_id="r")
    assert transport.model.calls == len(STEPS) - kill_after
    assert result.approved and result.cycles == 1


def test_resuming_a_finished_run_makes_no_call(memory):
    orchestrate(memory)[1].run(TOPIC, run_id="r")
    transport, orch = orchestrate(memory)
    assert orch.run(run_id="r").approved and transport.model.calls == 0
    with pytest.raises(ValueError, match="is about"):
        orch.run("Another topic", run_id="r")
    with pytest.raises(ValueError, match="not in memory"):
        orch.run(run_id="never-started")


class CountingWrites:
    """A memory that passes everything on and counts the writes (each `set_many` is one transaction)."""

    def __init__(self, inner, writes: list):
        self.inner, self.writes = inner, writes

    def scoped(self, namespace):
        return CountingWrites(self.inner.scoped(namespace), self.writes)

    def set_many(self, items):
        self.writes.append(dict(items))
        self.inner.set_many(items)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_each_step_is_one_write_made_before_the_next_call_and_its_status_comes_with_it(memory):
    writes = []
    _, orch = orchestrate(CountingWrites(memory, writes))
    result = orch.run(TOPIC, run_id="r")
    assert result.approved and len(writes) == 1 + len(STEPS)  # the inputs, then one transaction a step
    assert [w.get("status") for w in writes] == ["researching", "writing", "validating", "revising",
                                                 "validating", "approved"]
    for write, step in zip(writes[1:], STEPS):
        assert step in write and "usage" in write and list(write)[-1] == "status"  # the status last


def test_a_run_stopped_between_its_verdict_and_its_end_is_finished_on_resume_without_a_call(memory):
    orchestrate(memory)[1].run(TOPIC, run_id="r")
    run = memory.scoped("r")
    for key in ("report", "reason"):  # what an older mas wrote in a second transaction after the verdict
        run.delete(key)
    run.set("status", "validating")
    writes = []
    transport, orch = orchestrate(CountingWrites(memory, writes))
    result = orch.run(run_id="r")
    assert transport.model.calls == 0 and result.status == "approved" and result.report == run.get("draft_2")
    assert [w["status"] for w in writes] == ["approved"]
    assert run.get("reason") == "approved after 1 revision(s)"


def test_circuit_breaker_returns_the_best_draft_with_the_reason(memory):
    transport, orch = orchestrate(memory, max_revision_cycles=0)
    result = orch.run(TOPIC, run_id="r")
    assert (result.status, result.approved, result.cycles) == ("max_cycles", False, 0)
    assert len(result.issues) == 2 and "limit" in result.reason
    assert result.report == memory.scoped("r").get("draft_1") and transport.model.calls == 3


def _scripted_pipeline(validator_replies, drafts=("# D\n\nDraft one.", "# D\n\nDraft two.", "# D\n\nDraft 3!.")):
    """Research, then alternating writer / validator replies, as a scripted transport."""
    queue = ["- Point one.\n- Point two."]
    for i, verdict in enumerate(validator_replies):
        queue += [drafts[min(i, len(drafts) - 1)], verdict]
    return ScriptedTransport(queue)


def test_max_cycles_is_respected_and_the_best_draft_wins(memory):
    verdicts = [json.dumps({"issues": ["a", "b", "c"], "approved": False}),
                json.dumps({"issues": ["a"], "approved": False}),
                json.dumps({"issues": ["a", "b"], "approved": False})]
    transport = _scripted_pipeline(verdicts)
    result = orchestrate(memory, transport, max_revision_cycles=2)[1].run(TOPIC, run_id="r")
    assert result.status == "max_cycles" and result.cycles == 2 and len(transport.requests) == 7
    # the issues are the returned draft's own (draft 2's one), not the last verdict's (draft 3's two)
    assert result.report == "# D\n\nDraft two." and result.issues == ["a"] and result.report_draft == 2
    assert result.draft == "# D\n\nDraft 3!." and "returning draft 2 of 3" in result.reason


@pytest.mark.parametrize("bad", ["```json\n{\"issues\": [], \"approved\": true}\n```", "Approved!",
                                 '{"issues": [], "approved": tr', '{"approved": true}'])
def test_a_validator_that_never_answers_properly_fails_the_run_never_approves_it(memory, bad):
    transport = ScriptedTransport(["- Point.", "Draft about the point.", bad, bad, bad])
    result = orchestrate(memory, transport)[1].run(TOPIC, run_id="r")
    assert result.status == "failed" and not result.approved
    assert "no valid verdict after 3 answers" in result.reason
    assert memory.scoped("r").get("validation_1") is None  # nothing half-written


def test_validator_input_tokens_stay_flat_across_cycles(memory):
    verdict = json.dumps({"issues": ["still wrong"], "approved": False})
    transport = _scripted_pipeline([verdict] * 4, drafts=("# D\n\nSame size draft A.",) * 4)
    orchestrate(memory, transport, max_revision_cycles=3)[1].run(TOPIC, run_id="r")
    from mas.offline.tokens import count_request

    validator_requests = [r for r in transport.requests if r["system"].startswith("You are a validator")]
    assert len(validator_requests) == 4
    assert len({count_request(r) for r in validator_requests}) == 1  # flat: no history carried over
    writer_revisions = [r for r in transport.requests if r["system"].startswith("You are a technical writer")][1:]
    assert all("<issues>\n- still wrong\n</issues>" in r["messages"][-1]["content"] for r in writer_revisions)
    assert all("<research>" in r["messages"][-1]["content"] for r in writer_revisions)


def test_redis_memory_works_the_same(redis_url):
    with RedisMemory(redis_url, namespace="orchestrator-test") as mem:
        mem.clear()
        transport, orch = orchestrate(mem)
        result = orch.run(TOPIC, run_id="r")
        assert result.approved and mem.scoped("r").get("report") == result.report
        again_transport, orch = orchestrate(mem)
        assert orch.run(run_id="r").approved and again_transport.model.calls == 0
        mem.clear()


# ---------------------------------------------------------------- the command


def test_command_runs_offline_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report.md"
    code = cli(["run", TOPIC, "--db", str(tmp_path / "m.db"), "--run-id", "c1", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "[Orchestrator] Dispatching to Researcher..." in captured.out
    assert out.read_text().startswith("# How vector databases") and "run c1: approved" in captured.out


def test_command_exit_codes_and_one_line_reasons(tmp_path, capsys):
    db = str(tmp_path / "m.db")
    assert cli(["run", TOPIC, "--db", db, "--max-cycles", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mas: max_cycles: not approved after 0 revision(s)")
    assert cli(["run"]) == 2
    assert cli(["run", "--db", db, "--run-id", "missing"]) == 2
    assert "not in memory" in capsys.readouterr().err


def test_command_resumes_a_crashed_run(tmp_path, capsys):
    db = tmp_path / "m.db"
    subprocess.run([sys.executable, str(HERE / "crash_worker.py"), str(db), "crashed", "2"], capture_output=True)
    assert cli(["run", "--db", str(db), "--run-id", "crashed"]) == 0
    out = capsys.readouterr().out
    assert "research: already in memory" in out and "draft_1: already in memory" in out
    assert "Dispatching to Researcher" not in out


def test_one_client_for_the_team_and_what_it_creates_it_closes(tmp_path, monkeypatch):
    transport = OfflineTransport(faults="overloaded@1")  # call numbers count across the whole team
    built = []  # the clients the orchestrator makes, over a transport the test can read

    def make_client_over_transport(**options):
        built.append(make_client(transport=transport, **options))
        return built[-1]

    monkeypatch.setattr("mas.orchestrator.make_client", make_client_over_transport)
    monkeypatch.setenv("MAS_DB", str(tmp_path / "default.db"))
    with Orchestrator(progress=None) as orch:
        client = orch.researcher.client
        assert orch.writer.client is client is orch.validator.client
        result = orch.run(TOPIC, run_id="r")
        assert result.approved
        assert built == [client] and transport.model.calls == len(STEPS) + 1  # one fault, one SDK retry, for all
    assert client.is_closed()
    with pytest.raises(Exception, match="closed"):
        orch.memory.get("x")
    passed_in = SQLiteMemory(tmp_path / "mine.db")
    Orchestrator(passed_in, client=make_client(), progress=None).close()
    assert passed_in.get("x") is None  # not closed: it was passed in
    passed_in.close()


def test_research_that_says_it_knows_nothing_ends_the_run_before_any_draft(memory):
    script = ScriptedTransport(["No research: I have no notes on Zorblax farming."])
    orch = Orchestrator(memory, client=make_client(transport=script, max_retries=0), progress=None)
    result = orch.run("Zorblax farming", run_id="z")
    assert result.status == "no_research" and not result.approved and result.report == ""
    assert result.reason == "the researcher has nothing on this topic: I have no notes on Zorblax farming."
    assert len(script.requests) == 1 and "draft_1" not in memory.scoped("z").get_all()
    again = Orchestrator(memory, client=make_client(transport=ScriptedTransport([]), max_retries=0), progress=None)
    assert again.run(run_id="z").status == "no_research"  # resumed: the saved research says it again, no call


@pytest.mark.parametrize("stop", ["budget_exceeded", "failed"])
def test_a_run_that_stops_after_a_draft_has_no_report_only_its_latest_draft(memory, stop):
    faults = [Fault("server_error", role="validator", times=None)] if stop == "failed" else []
    _, orch = orchestrate(memory, OfflineTransport(faults=faults))
    with call_hook(Budget(max_calls=2)) if stop == "budget_exceeded" else nullcontext():  # research, draft: no verdict
        result = orch.run(TOPIC, run_id="r")
    run = memory.scoped("r").get_all()
    assert (result.status, result.approved, result.report, result.report_draft) == (stop, False, "", 0)
    assert result.draft == run["draft_1"] and "report" not in run and run["status"] == stop


def test_an_approved_report_is_its_latest_draft_and_says_which(memory):
    result = orchestrate(memory)[1].run(TOPIC, run_id="r")
    assert result.approved and result.report == result.draft == memory.scoped("r").get("draft_2")
    assert result.report_draft == 2
