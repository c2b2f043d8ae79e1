"""Grounded research (mas.tools + mas.search): a researcher that searches, cites passages, and a validator
that checks each citation against the research point it cites; on the offline model through the real SDK."""

from __future__ import annotations

import pytest

from mas.agents import ValidatorAgent, WriterAgent
from mas.client import make_client
from mas.memory import SQLiteMemory
from mas.offline import OfflineTransport, ScriptedTransport, text_message
from mas.orchestrator import Orchestrator
from mas.prompts import CITATION, GROUNDED_RESEARCHER_PROMPT, NO_RESEARCH, research_task, write_task
from mas.search import DocumentIndex
from mas.tools import GroundedResearcherAgent, search_tools, unsupported_points

TOPIC = "How vector databases enable semantic search"


@pytest.fixture(scope="module")
def index():
    index = DocumentIndex()
    index.add_knowledge_base()
    return index


def researcher(index, transport=None):
    return GroundedResearcherAgent(index, client=make_client(transport=transport or OfflineTransport()))


def test_the_research_records_its_tool_rounds_and_every_point_cites_a_passage_that_says_it(index):
    transport = OfflineTransport()
    agent = researcher(index, transport)
    notes = agent.run(research_task(TOPIC, "engineers"))
    # the rounds are in the conversation: the search call, its result, then the notes
    blocks = [block["type"] for turn in agent.history if isinstance(turn["content"], list) for block in turn["content"]]
    assert blocks == ["tool_use", "tool_result"] and agent.usage.calls == transport.model.calls == 2
    assert [tool.name for tool in agent.tools] == ["search", "read"]
    points = [line for line in notes.splitlines() if line.startswith("- ")]
    assert len(points) >= 3 and agent.left_out == []
    for point in points:
        [cited] = CITATION.findall(point)
        passage = index.passage(cited)
        assert passage is not None and passage.text.split()[0] in point, point
    assert unsupported_points(notes, index) == []


def test_a_topic_the_documents_do_not_cover_is_no_research_after_a_second_query(index):
    agent = researcher(index)
    notes = agent.run(research_task("Medieval falconry", "historians"))
    assert notes.startswith(NO_RESEARCH) and "queries tried" in notes
    assert agent.usage.calls == 3  # a search, a shorter one, then the honest answer


def test_ungrounded_points_are_left_out_and_named(index):
    real = index.search("HNSW layered proximity graph", limit=1)[0]
    notes = "\n".join([f"- {real.text} (source: {real.id})",
                       "- Vector search was invented in 1850 by sailors. (source: vector-databases#1)",
                       "- A point citing nothing real. (source: nowhere#9)",
                       "- A point with no citation at all."])
    agent = researcher(index, ScriptedTransport([text_message(notes)]))
    kept = agent.run(research_task(TOPIC, "engineers"))
    assert [reason for _, reason in agent.left_out] == [
        "vector-databases#1 does not say this", "it cites nowhere#9, which no document has", "it cites no passage"]
    assert kept.splitlines()[0] == f"- {real.text} (source: {real.id})"
    assert "_Left out 3 point(s) not grounded in a passage" in kept
    only_bad = researcher(index, ScriptedTransport([text_message("- A point with no citation at all.")]))
    assert only_bad.run(research_task(TOPIC, "engineers")).startswith(f"{NO_RESEARCH} none of the 1 points")


def test_a_grounded_run_is_approved_and_a_swapped_citation_is_caught(index):
    client = make_client(transport=OfflineTransport())
    orchestrator = Orchestrator(SQLiteMemory(":memory:"), client=client, progress=None,
                                researcher=GroundedResearcherAgent(index, client=client))
    result = orchestrator.run(TOPIC, "engineers")
    assert result.status == "approved", result.reason
    cited = CITATION.findall(result.report)
    assert len(set(cited)) >= 3 and all(index.passage(pid) for pid in cited)
    research = orchestrator.memory.scoped(result.run_id).get("research")
    first, second = list(dict.fromkeys(cited))[:2]
    swapped = (result.report.replace(f"(source: {first})", "(source: @@)")
               .replace(f"(source: {second})", f"(source: {first})").replace("(source: @@)", f"(source: {second})"))
    verdict = ValidatorAgent(client=client).review(research, swapped)
    assert not verdict.approved
    assert sum(issue.startswith("Mis-cited claim") for issue in verdict.issues) >= 2, verdict.issues


def test_the_writer_keeps_the_citations(index):
    client = make_client(transport=OfflineTransport())
    notes = GroundedResearcherAgent(index, client=client).run(research_task(TOPIC, "engineers"))
    draft = WriterAgent(client=client).run(write_task(TOPIC, "engineers", notes))
    assert set(CITATION.findall(draft)) <= set(CITATION.findall(notes)) and CITATION.findall(draft)


# ---------------------------------------------------------------------------- mas run TOPIC --docs DIR

DOCS = {
    "pipeline.md": "# Our deployment pipeline\n\nEvery merge to main triggers the deployment pipeline, which builds "
                   "one container image and tags it with the commit hash.\n\nThe pipeline runs the unit tests and "
                   "the integration tests in parallel; a failed stage stops the deployment before any server is "
                   "touched.\n",
    "guides/rollout.md": "# Staged rollouts\n\nThe deployment pipeline releases a new image to 5% of servers first, "
                         "waits 30 minutes while watching the error rate, then rolls out to the rest.\n\nIf the error "
                         "rate of the canary servers rises above 2%, the pipeline rolls the deployment back "
                         "automatically.\n",
    "oncall.txt": "On-call engineers get paged when an automatic rollback of the deployment pipeline happens, and "
                  "they write a short incident note within one day.\n",
}


@pytest.fixture
def docs(tmp_path):
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    return tmp_path / "docs"


def test_mas_run_with_docs_grounds_its_report_in_your_own_files(docs, tmp_path, capsys):
    from mas.cli import main

    db = tmp_path / "memory.db"
    assert main(["run", "How our deployment pipeline works", "--docs", str(docs), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "docs: 3 document(s), 5 passage(s)" in out and "3 added" in out
    report = out.split("[Orchestrator] Done:")[1]
    cited = set(CITATION.findall(report))
    assert {pid.split("#")[0] for pid in cited} == {"pipeline", "guides/rollout", "oncall"}
    index = DocumentIndex(next((tmp_path / "docs-index").glob("*.db")))
    for pid in cited:  # every citation is a passage of those files, and the sentence citing it says what it says
        passage = index.passage(pid)
        assert passage is not None
        line = next(line for line in report.splitlines() if f"(source: {pid})" in line)
        assert passage.text.splitlines()[-1].split()[:6] == line.split()[:6], (line, passage.text)
    # the index is kept beside the memory and brought up to date: nothing changed, nothing re-indexed
    assert main(["run", "How our deployment pipeline works", "--docs", str(docs), "--db", str(db)]) == 0
    assert "0 added, 0 updated, 0 removed, 3 unchanged" in capsys.readouterr().out


def test_mas_run_with_docs_on_a_topic_they_do_not_cover_approves_nothing(docs, tmp_path, capsys):
    from mas.cli import main

    assert main(["run", "Medieval falconry", "--docs", str(docs), "--db", str(tmp_path / "m.db")]) == 1
    captured = capsys.readouterr()
    assert "no_research" in captured.err and "the search found nothing" in captured.err


@pytest.mark.parametrize("make, said", [
    (lambda root: root / "absent", "not a folder"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "no text in it"),
])
def test_mas_run_with_a_docs_folder_it_cannot_use_says_so_in_one_line(tmp_path, capsys, make, said):
    from mas.cli import main

    folder = make(tmp_path)
    assert main(["run", "anything", "--docs", str(folder), "--db", str(tmp_path / "m.db")]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("offline model")]
    assert said in line and str(folder) in line and "Traceback" not in line


def test_the_sdks_own_tool_runner_runs_offline_on_a_server_held_thread(index):
    # the SDK's tool runner keeps the conversation on the server (thread create, then continue with only the
    # tool results): the offline model holds threads as the API does, so the runner's loop works unchanged
    client = make_client(transport=OfflineTransport())
    runner = client.beta.messages.tool_runner(
        model="claude-opus-4-6", max_tokens=1500, system=GROUNDED_RESEARCHER_PROMPT, tools=search_tools(index),
        messages=[{"role": "user", "content": research_task(TOPIC, "engineers")}], max_iterations=4)
    replies = list(runner)
    assert [r.stop_reason for r in replies] == ["tool_use", "end_turn"]
    notes = replies[-1].content[0].text
    assert unsupported_points(notes, index) == [] and len(CITATION.findall(notes)) >= 3


def test_a_thread_continues_only_from_a_message_the_model_holds():
    import anthropic

    from mas.offline import model as offline_model

    client = make_client(transport=OfflineTransport())
    first = client.beta.messages.create(model="claude-opus-4-6", max_tokens=200, system="Answer in one line.",
                                        messages=[{"role": "user", "content": "hello"}], thread={"type": "create"})
    later = client.beta.messages.create(model="claude-opus-4-6", max_tokens=200,
                                        messages=[{"role": "user", "content": "and again"}],
                                        thread={"type": "continue", "previous_message_id": first.id})
    assert later.id != first.id and later.content[0].text
    with pytest.raises(anthropic.NotFoundError, match="thread: no message 'msg_nope' to continue"):
        client.beta.messages.create(model="claude-opus-4-6", max_tokens=200, messages=[{"role": "user", "content": "x"}],
                                    thread={"type": "continue", "previous_message_id": "msg_nope"})
    held = OfflineTransport().model
    for n in range(offline_model.MAX_THREADS + 5):  # bounded: the oldest threads go first
        held._hold({"messages": []}, {"id": f"msg_{n}", "content": []})
    assert len(held._threads) == offline_model.MAX_THREADS and "msg_0" not in held._threads


def test_the_grounded_validator_catches_a_miscitation_the_model_approved(index):
    from mas.contracts import ValidationResult
    from mas.tools import GroundedValidatorAgent

    hnsw, hybrid = index.passage("vector-databases#5"), index.passage("vector-databases#9")
    draft = f"# Vector search\n\n{hnsw.text} (source: {hybrid.id})\n\n{hybrid.text} (source: {hybrid.id})"
    research = f"- {hnsw.text} (source: {hnsw.id})\n- {hybrid.text} (source: {hybrid.id})"
    approving = '{"issues": [], "approved": true, "confidence": 0.9}'  # a model that missed it
    validator = GroundedValidatorAgent(index, client=make_client(transport=ScriptedTransport([approving] * 2)))
    verdict = validator.review(research, draft)
    assert isinstance(verdict, ValidationResult) and not verdict.approved
    assert verdict.issues == [f'Mis-cited claim: "{" ".join(hnsw.text.split()[:12])} ..." cites vector-databases#9, '
                              "which does not say it"]
    faithful = draft.replace(f"(source: {hybrid.id})", f"(source: {hnsw.id})", 1)
    assert validator.review(research, faithful).approved
    # the offline model's validator finds the same issue, and it is not listed twice
    offline = GroundedValidatorAgent(index, client=make_client(transport=OfflineTransport())).review(research, draft)
    assert [issue for issue in offline.issues if issue.startswith("Mis-cited")] == verdict.issues
