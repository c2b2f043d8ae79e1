"""mas.evals and `mas eval`: variants over an eval set, graders, results, and the regression gate, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mas.budget import Budget
from mas.client import make_client
from mas.evals import (
    DETERMINISTIC,
    Variant,
    judge,
    load_cases,
    load_results,
    regressions,
    run_eval,
    wilson,
)
from mas.offline import OfflineTransport
from mas.prompts import SYSTEM_PROMPTS
from mas.tracing import Tracer

ROOT = Path(__file__).resolve().parent.parent
EVALSET = ROOT / "evals" / "writer.jsonl"
CONCISE = (ROOT / "evals" / "writer_concise.txt").read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def cases():
    return load_cases(EVALSET)


@pytest.fixture(scope="module")
def two_variants(cases):
    variants = [Variant("baseline"), Variant("concise", prompts={"writer": CONCISE})]
    return run_eval(cases, variants, client=make_client(transport=OfflineTransport()), concurrency=4)


def test_two_writer_prompts_give_different_pass_rates_reproducibly(cases, two_variants):
    assert len(cases) == 10
    base, concise = two_variants.summaries()
    assert (base.passed, base.cases) == (10, 10) and concise.passed < base.passed
    assert concise.interval[1] < base.interval[0] or concise.passed <= 5  # apart beyond the noise of 10 cases
    again = run_eval(cases, [Variant("concise", prompts={"writer": CONCISE})],
                     client=make_client(transport=OfflineTransport()), concurrency=2)
    assert [(r.case, r.passed, r.score) for r in again.records] == [
        (r.case, r.passed, r.score) for r in two_variants.of("concise")]
    # a failed case says which grader failed it, and why
    assert all(" - " in line for line in two_variants.failures("concise"))


def test_the_plot_shows_each_variants_pass_rate_with_its_interval_against_its_cost(two_variants):
    pytest.importorskip("matplotlib")
    figure = two_variants.plot()
    [ax] = figure.axes
    assert ax.get_xlabel() == "cost of the eval ($)" and ax.get_ylabel() == "pass rate (95% interval)"
    # one error bar a variant: its point, and its label
    points = {bar.get_label(): tuple(bar.lines[0].get_xydata()[0]) for bar in ax.containers}
    assert len(points) == 2
    for s in two_variants.summaries():
        [(label, (x, y))] = [(k, v) for k, v in points.items() if k.startswith(f"{s.variant}: ")]
        assert label == f"{s.variant}: {s.passed}/{s.cases} passed, score {s.mean_score:.2f}"
        assert (x, y) == pytest.approx((s.cost, s.pass_rate))
        [bar] = [b for b in ax.containers if b.get_label() == label]
        [segment] = bar.lines[2][0].get_segments()  # the vertical bar: from the interval's low end to its high end
        assert tuple(segment[:, 1]) == pytest.approx(s.interval)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(points)


def test_without_a_price_the_plot_counts_tokens_and_without_matplotlib_it_says_which_extra(two_variants, monkeypatch):
    pytest.importorskip("matplotlib")
    from mas.errors import MissingExtra
    from mas.evals import EvalResults

    unpriced = EvalResults([r.__class__(**{**r.__dict__, "cost": None}) for r in two_variants.records],
                           two_variants.variants)
    [ax] = unpriced.plot().axes
    assert ax.get_xlabel() == "tokens of the eval (a model's price is unknown)"
    assert sorted(bar.lines[0].get_xydata()[0][0] for bar in ax.containers) == \
        sorted(s.tokens for s in two_variants.summaries())
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # as if the plot extra were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'mas\[plot\]'"):
        two_variants.plot()


def test_the_gate_names_the_cases_that_regressed_and_passes_an_equal_run(two_variants, tmp_path):
    saved = load_results(two_variants.save(tmp_path / "base.jsonl"))
    assert saved.table() == two_variants.table() and saved.variants == two_variants.variants
    assert regressions(saved, saved) == []
    worse = run_eval(load_cases(EVALSET), [Variant("baseline", prompts={"writer": CONCISE})],
                     client=make_client(transport=OfflineTransport()))
    [line] = regressions(worse, saved)
    failed_now = {r.case for r in worse.records if not r.passed}
    assert line.startswith("baseline: pass rate") and "beyond noise" in line
    assert all(case in line for case in failed_now)


def test_every_grader_reads_the_run_and_a_forbidden_phrase_fails_the_case(cases, tmp_path):
    myth = {**json.loads(EVALSET.read_text().splitlines()[3]), "id": "x", "must_not_say": ["vector"],
            "must_cover": ["a phrase no report says about penguins"], "max_words": 5}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(myth) + "\n")
    [record] = run_eval(load_cases(path), [Variant("v")], client=make_client(transport=OfflineTransport())).records
    grades = {g.grader: g for g in record.grades}
    assert set(grades) == {g.__name__ for g in DETERMINISTIC}
    assert grades["approved"].passed and grades["supported"].passed
    assert not grades["forbidden"].passed and grades["forbidden"].note == "found: vector"
    assert not grades["coverage"].passed and not grades["length"].passed and not record.passed


def test_a_model_judge_grades_and_a_lenient_rubric_passes_everything(cases):
    client = make_client(transport=OfflineTransport())
    no_revision = [Variant("first-drafts", max_cycles=0)]  # first drafts are flawed on purpose offline
    strict = run_eval(cases[:4], no_revision, graders=[judge(client)], client=client)
    lenient = run_eval(cases[:4], no_revision, graders=[judge(client, SYSTEM_PROMPTS["validator"] +
                                                                " Approve every draft.")], client=client)
    assert sum(r.passed for r in strict.records) == 0  # the judge finds the first drafts' flaws
    assert sum(r.passed for r in lenient.records) == 4  # a judge's rubric is a prompt too: test it


def test_runs_share_the_callers_hooks_across_threads(cases):
    client = make_client(transport=OfflineTransport())
    with Tracer() as tracer:
        results = run_eval(cases[:6], [Variant("v")], client=client, concurrency=3)
    assert len(tracer.spans) == sum(r.calls for r in results.records) == 30
    with Budget(max_calls=12):
        capped = run_eval(cases[:6], [Variant("v")], client=client, concurrency=3)
    assert sum(r.calls for r in capped.records) <= 12
    assert {r.status for r in capped.records} >= {"budget_exceeded"} and not all(r.passed for r in capped.records)


@pytest.mark.parametrize("line, said", [
    ('{"id": "a"}', "line 1: not a case (topic: Field required)"),
    ('{"id": "a", "topic": "t", "colour": 1}', "line 1: not a case (colour: Extra inputs are not permitted)"),
    ('{"id": "a", "topic": "t"}\n{"id": "a", "topic": "u"}', "case ids must be unique, repeated: a"),
    ("# only a comment", "an eval set holds 1 to 1000 cases, this one 0"),
    ("not json", "line 1: not a case"),
])
def test_a_bad_eval_set_is_one_line_naming_the_file_and_the_line(tmp_path, line, said):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=None) as caught:
        load_cases(path)
    assert said in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_the_interval_and_the_limits():
    assert wilson(10, 10)[1] == 1.0 and wilson(10, 10)[0] > 0.69 and wilson(0, 10)[0] == 0.0
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        run_eval([], [Variant("v")], concurrency=0)
    with pytest.raises(ValueError, match="distinct"):
        run_eval([], [Variant("v"), Variant("v")])
    with pytest.raises(ValueError, match="prompts for researcher, writer or validator"):
        Variant("v", prompts={"judge": "x"})


def test_mas_eval_prints_the_table_saves_and_gates(tmp_path, capsys):
    from mas.cli import main

    prompt = tmp_path / "concise.txt"
    prompt.write_text(CONCISE)
    out = tmp_path / "results.jsonl"
    plot = tmp_path / "score_vs_cost.png"
    assert main(["eval", str(EVALSET), "--out", str(out), "--plot", str(plot)]) == 0
    said = capsys.readouterr().out
    assert "baseline  10/10" in said and f"plot saved to {plot}" in said
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", str(EVALSET), "--no-baseline", "--variant", f"baseline={prompt}", "--baseline", str(out)]) == 1
    captured = capsys.readouterr()
    assert "mas: regression: baseline: pass rate" in captured.err and "regressed: " in captured.err
    assert main(["eval", str(EVALSET), "--max-cost", "0.05"]) == 0  # a budget: runs past it stop, and fail
    capped = capsys.readouterr().out
    assert "baseline  0/10" in capped and capped.count("the run ended budget_exceeded") == 10
    for args, said in [(["eval", str(tmp_path / "absent.jsonl")], "absent.jsonl: no such file or directory"),
                       (["eval", str(EVALSET), "--variant", "nameonly"], "give it as NAME=PROMPTFILE"),
                       (["eval", str(EVALSET), "--baseline", str(prompt)], "not eval results")]:
        assert main(args) == 2
        [line] = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("offline model")]
        assert said in line, line


def test_a_pairwise_judge_has_position_bias_and_judging_both_orders_removes_it():
    from mas.evals import pairwise, prefer
    from mas.prompts import research_task, write_task

    client = make_client(transport=OfflineTransport())
    from mas.agents import ResearcherAgent, WriterAgent

    research = ResearcherAgent(client=client).run(research_task("How vector databases enable semantic search", "engineers"))
    flawed = WriterAgent(client=client).run(write_task("How vector databases enable semantic search", "engineers",
                                                       research))  # the offline first draft: flawed on purpose
    retitled = flawed.replace("# ", "# On: ", 1)  # as good as the flawed one, and no better
    # two equal reports: the judge prefers whichever it is shown first
    assert prefer(client, research, flawed, retitled).better == "A"
    assert prefer(client, research, retitled, flawed).better == "A"
    assert pairwise(client, research, flawed, retitled) == "tie"
    # a really better report wins in both orders
    good = research.split("\n\n", 1)[-1]  # the research's own points, as a report: nothing unsupported or left out
    from mas.offline.validator import check_draft

    assert len(check_draft(good, research)) < len(check_draft(flawed, research))
    assert pairwise(client, research, flawed, good) == "second" and pairwise(client, research, good, flawed) == "first"
