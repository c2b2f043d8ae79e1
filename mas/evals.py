"""Evaluations: run variants of the pipeline (prompts, models, limits) over a set of cases, grade every result,
compare the variants, and gate a change on a baseline.

    cases = load_cases("evals/writer.jsonl")                 # one case a line: topic, audience, expectations
    variants = [Variant("baseline"),
                Variant("stats", prompts={"writer": SYSTEM_PROMPTS["writer"] + " Add impressive statistics."})]
    results = run_eval(cases, variants, concurrency=8)       # every variant on every case, graded
    print(results.table())
    results.save("data/evals/today.jsonl")
    regressions(results, load_results("data/evals/baseline.jsonl"))   # [] when nothing got worse beyond noise

One example is not evidence: a prompt that fixes one topic can break three others, and a model's output varies.
So a variant is judged on every case of a set, by graders of two kinds:
- deterministic ones, code that cannot be argued with: the run approved, the expected points covered, no claim
  that must not appear, every claim supported by the research, a length limit;
- a model-graded one (`judge`): a model answers a rubric through structured outputs. It reads what code cannot,
  and it has failure modes of its own (a lenient rubric passes everything), so its verdicts are shown apart.

A case passes when every grader passes it; a variant's pass rate comes with a 95% interval (Wilson), because
10 cases cannot tell 80% from 90%. `regressions` flags a variant whose pass rate fell below its baseline's by
more than that noise, and names the cases that passed before and fail now. Results are JSON Lines, with each
variant's prompts' hashes and model, so two runs can be compared long after.

The runs are independent, so they run in threads (`concurrency`), each in its own in-memory SQLite memory, with
the hooks of the caller (a `Tracer`, a `Budget`) seeing every call.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mas.contracts import RunResult, ValidationResult
from mas.extras import require
from mas.prompts import DEFAULT_AUDIENCE, SYSTEM_PROMPTS, validate_task

MAX_CASES = 1000  # cases in one eval set: more is a batch job (issue of scale), not an eval
JUDGE_PROMPT = (
    "You are a judge grading a report for a team that publishes it. Read the research and the report. List as "
    "issues every claim the research does not support, every research point the report leaves out, and anything "
    "unclear. Approve only when there are no issues. Answer with the JSON object only."
)


class Case(BaseModel):
    """One case of an eval set: a topic to run the pipeline on, and what its report must (not) hold."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="A name for the case, unique in its set.")
    topic: str = Field(min_length=1)
    audience: str = DEFAULT_AUDIENCE
    must_cover: list[str] = Field(default_factory=list, description="Phrases the report must say (most words).")
    must_not_say: list[str] = Field(default_factory=list, description="Phrases the report must not contain.")
    max_words: int | None = Field(None, ge=1, description="The most words the report may have.")


def load_cases(path: str | Path) -> list[Case]:
    """The cases of an eval set file (JSON Lines: one case a line; blank lines and `#` lines skipped). A line
    that is not a case is a `ValueError` naming the file and the line."""
    cases: list[Case] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cases.append(Case.model_validate_json(line))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"])) or "the line"
            raise ValueError(f"{path}, line {n}: not a case ({where}: {first['msg']})") from None
    ids = [c.id for c in cases]
    if dupes := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(f"{path}: case ids must be unique, repeated: {', '.join(dupes)}")
    if not cases or len(cases) > MAX_CASES:
        raise ValueError(f"{path}: an eval set holds 1 to {MAX_CASES} cases, this one {len(cases)}")
    return cases


@dataclass(frozen=True)
class Variant:
    """One way to run the pipeline: system prompts per role (the others as in `mas.prompts`), a model, limits."""

    name: str
    prompts: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    max_tokens: int = 2048
    max_cycles: int = 3

    def __post_init__(self) -> None:
        if unknown := set(self.prompts) - {"researcher", "writer", "validator"}:
            raise ValueError(f"variant {self.name!r}: prompts for researcher, writer or validator, not {sorted(unknown)}")

    def prompt(self, role: str) -> str:
        return self.prompts.get(role, SYSTEM_PROMPTS[role])

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the variant in saved results: each role's prompt hash, the model and the limits."""
        from mas.client import default_model

        return {"variant": self.name, "model": self.model or default_model(), "max_tokens": self.max_tokens,
                "max_cycles": self.max_cycles,
                "prompts": {role: hashlib.sha256(self.prompt(role).encode()).hexdigest()[:16]
                            for role in ("researcher", "writer", "validator")}}


# ---------------------------------------------------------------------------- graders

@dataclass(frozen=True)
class Grade:
    grader: str
    passed: bool
    score: float  # 0 to 1
    note: str = ""


@dataclass
class Outcome:
    """What a grader reads: the case, the run's result, and the research the report was written from."""

    case: Case
    result: RunResult
    research: str


Grader = Callable[[Outcome], Grade]


def approved(o: Outcome) -> Grade:
    """The pipeline's own verdict: the report was approved by its validator."""
    return Grade("approved", o.result.approved, float(o.result.approved),
                 "" if o.result.approved else f"the run ended {o.result.status}, not approved")


def coverage(o: Outcome) -> Grade:
    """Every `must_cover` phrase is said by the report (most of its content words, in any form)."""
    from mas.offline.prose import share, stems

    said = stems(o.result.report)
    missing = [p for p in o.case.must_cover if share(p, said) < 0.7]
    n = len(o.case.must_cover)
    return Grade("coverage", not missing, 1.0 if not n else (n - len(missing)) / n,
                 f"missing: {'; '.join(missing)}" if missing else "")


def forbidden(o: Outcome) -> Grade:
    """No `must_not_say` phrase appears in the report (case and spacing aside)."""
    text = " ".join(o.result.report.lower().split())
    found = [p for p in o.case.must_not_say if " ".join(p.lower().split()) in text]
    return Grade("forbidden", not found, 0.0 if found else 1.0, f"found: {'; '.join(found)}" if found else "")


def supported(o: Outcome) -> Grade:
    """Every claim of the report is supported by the research, and no figure contradicts it (the checks of the
    offline validator, run as code: the same text always gets the same grade)."""
    from mas.offline.prose import claims
    from mas.offline.validator import check_draft

    if not o.result.report:
        return Grade("supported", False, 0.0, "no report")
    issues = check_draft(o.result.report, o.research, frozenset({"support", "numbers"}))
    n = max(1, len(claims(o.result.report)))
    return Grade("supported", not issues, max(0.0, 1 - len(issues) / n), issues[0][:120] if issues else "")


def length(o: Outcome) -> Grade:
    """The report has at most `max_words` words (a case without a limit passes)."""
    words = len(o.result.report.split())
    limit = o.case.max_words
    ok = limit is None or words <= limit
    return Grade("length", ok, 1.0 if ok else limit / words, "" if ok else f"{words} words, limit {limit}")


def judge(client: Any, rubric: str = JUDGE_PROMPT, model: str | None = None) -> Grader:
    """A model-graded grader: a judge model reads the research and the report and answers the rubric as a
    `ValidationResult` through structured outputs; its score is its confidence when it approves, else
    one minus a quarter per issue."""
    from mas.agents import BaseAgent

    def graded(o: Outcome) -> Grade:
        if not o.result.report:
            return Grade("judge", False, 0.0, "no report")
        agent = BaseAgent("judge", client=client, model=model, system_prompt=rubric)
        verdict = agent.ask(validate_task(o.research, o.result.report), ValidationResult, structured=True)
        score = verdict.confidence if verdict.approved else max(0.0, 1 - 0.25 * len(verdict.issues))
        return Grade("judge", verdict.approved, score, verdict.issues[0][:120] if verdict.issues else "")

    return graded


DETERMINISTIC: tuple[Grader, ...] = (approved, coverage, forbidden, supported, length)


# ---------------------------------------------------------------------------- pairwise judging

COMPARE_PROMPT = ("You are a judge comparing two reports written from the same research for a team that publishes "
                  "one of them. Prefer the report with fewer unsupported claims, fewer omissions and clearer "
                  "writing. Answer with the JSON object only.")


class Preference(BaseModel):
    """A judge's answer to "which of two reports is better"."""

    model_config = ConfigDict(extra="forbid")

    better: Literal["A", "B", "tie"]
    reason: str


def prefer(client: Any, research: str, report_a: str, report_b: str, *, rubric: str = COMPARE_PROMPT,
           model: str | None = None) -> Preference:
    """One pairwise judgement, through structured outputs: is report A or report B better?"""
    from mas.agents import BaseAgent
    from mas.prompts import compare_task

    agent = BaseAgent("judge", client=client, model=model, system_prompt=rubric)
    return agent.ask(compare_task(research, report_a, report_b), Preference, structured=True)


def pairwise(client: Any, research: str, first: str, second: str, **options: Any) -> str:
    """Which report wins, "first" or "second", judged in both orders: a preference that flips when the two
    swap places is position bias, not a preference, and counts as "tie"."""
    shown_first = prefer(client, research, first, second, **options).better
    shown_second = prefer(client, research, second, first, **options).better
    if (shown_first, shown_second) == ("A", "B"):
        return "first"
    if (shown_first, shown_second) == ("B", "A"):
        return "second"
    return "tie"


# ---------------------------------------------------------------------------- running

@dataclass
class Record:
    """One variant on one case: how the run went, each grade, and what it cost."""

    variant: str
    case: str
    status: str
    passed: bool
    score: float
    grades: list[Grade]
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    seconds: float
    error: str = ""


def run_eval(cases: Sequence[Case], variants: Sequence[Variant], graders: Sequence[Grader] = DETERMINISTIC, *,
             client: Any = None, concurrency: int = 4) -> EvalResults:
    """Every variant on every case, `concurrency` runs at a time, each graded by every grader."""
    from mas.client import make_client

    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if not graders:
        raise ValueError("give at least one grader")
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be distinct")
    client = client or make_client()
    jobs = [(v, c) for v in variants for c in cases]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        # each run in a copy of the caller's context, so its hooks (a tracer, a budget) see every call
        futures = [pool.submit(contextvars.copy_context().run, _run_one, v, c, graders, client) for v, c in jobs]
        records = [f.result() for f in futures]
    return EvalResults(records, [v.fingerprint() for v in variants], time.perf_counter() - started)


def _run_one(variant: Variant, case: Case, graders: Sequence[Grader], client: Any) -> Record:
    from mas.agents import ResearcherAgent, ValidatorAgent, WriterAgent
    from mas.client import default_model
    from mas.memory import SQLiteMemory
    from mas.orchestrator import Orchestrator
    from mas.pricing import cost

    model = variant.model or default_model()
    team = {role: cls(client=client, model=model, max_tokens=variant.max_tokens, system_prompt=variant.prompt(role))
            for role, cls in (("researcher", ResearcherAgent), ("writer", WriterAgent), ("validator", ValidatorAgent))}
    start = time.perf_counter()
    with SQLiteMemory(":memory:") as memory:
        try:
            result = Orchestrator(memory, client=client, max_revision_cycles=variant.max_cycles, model=model,
                                  progress=None, **team).run(case.topic, audience=case.audience, run_id="eval")
        except Exception as err:  # noqa: BLE001 - one case's crash is that case's failure, not the eval's
            from mas.errors import one_line

            return Record(variant.name, case.id, "error", False, 0.0, [], 0, 0, 0, None,
                          time.perf_counter() - start, one_line(err))
        research = memory.scoped("eval").get("research") or ""
    seconds = time.perf_counter() - start
    grades = [g(Outcome(case, result, research)) for g in graders]
    u = result.usage
    return Record(variant.name, case.id, result.status, all(g.passed for g in grades),
                  sum(g.score for g in grades) / len(grades), grades, u.calls, u.input_tokens, u.output_tokens,
                  cost(model, u), seconds)


# ---------------------------------------------------------------------------- results

@dataclass
class Summary:
    variant: str
    cases: int
    passed: int
    pass_rate: float
    interval: tuple[float, float]  # 95% Wilson interval of the pass rate
    mean_score: float
    calls: int
    tokens: int
    cost: float | None
    mean_seconds: float


class EvalResults:
    """The records of one eval run, the variants' fingerprints, and its wall time."""

    def __init__(self, records: list[Record], variants: list[dict[str, Any]], seconds: float = 0.0):
        self.records, self.variants, self.seconds = records, variants, seconds

    def of(self, variant: str) -> list[Record]:
        return [r for r in self.records if r.variant == variant]

    def summaries(self) -> list[Summary]:
        out = []
        for v in self.variants:
            rs = self.of(v["variant"])
            passed = sum(r.passed for r in rs)
            costs = [r.cost for r in rs]
            out.append(Summary(v["variant"], len(rs), passed, passed / len(rs) if rs else 0.0,
                               wilson(passed, len(rs)), sum(r.score for r in rs) / len(rs) if rs else 0.0,
                               sum(r.calls for r in rs), sum(r.input_tokens + r.output_tokens for r in rs),
                               None if None in costs else sum(costs),  # type: ignore[arg-type]
                               sum(r.seconds for r in rs) / len(rs) if rs else 0.0))
        return out

    def table(self) -> str:
        """One row per variant: pass rate with its interval, mean score, calls, tokens, cost, time a case."""
        from mas.tracing import format_table

        rows = [{"variant": s.variant, "passed": f"{s.passed}/{s.cases}",
                 "pass rate": f"{s.pass_rate:.0%} [{s.interval[0]:.0%}, {s.interval[1]:.0%}]",
                 "score": f"{s.mean_score:.2f}", "calls": s.calls, "tokens": f"{s.tokens:,}",
                 "cost": "unknown" if s.cost is None else f"${s.cost:.4f}"} for s in self.summaries()]
        return format_table(rows)

    def failures(self, variant: str) -> list[str]:
        """One line per failed case of `variant`: the case and its first failed grade."""
        lines = []
        for r in self.of(variant):
            if not r.passed:
                bad = next((g for g in r.grades if not g.passed), None)
                why = r.error or (f"{bad.grader} - {bad.note or 'failed'}" if bad else r.status)
                lines.append(f"{r.case}: {why}")
        return lines

    def plot(self, ax: Any = None) -> Any:
        """Each variant's pass rate (its 95% interval as an error bar) against what it cost: the trade-off a
        prompt change makes, at a glance. Cost in dollars from the price table; when a model's price is unknown,
        tokens instead (the axis says which). Draws on `ax` (e.g. `plt.subplots()[1]` in a notebook) or a new
        Figure, and returns the Figure (`.savefig(path)`); needs the `plot` extra.

        Overlapping bars are the honest reading of a small set: those variants are not shown to differ."""
        require("matplotlib", "EvalResults.plot")
        from matplotlib.figure import Figure  # not pyplot: no global figure, so threads and scripts may plot too

        summaries = self.summaries()
        in_dollars = all(s.cost is not None for s in summaries)
        if ax is None:
            ax = Figure(figsize=(6, 4)).subplots()
        for s in summaries:
            x = s.cost if in_dollars else s.tokens
            low, high = s.interval
            ax.errorbar([x], [s.pass_rate], yerr=[[s.pass_rate - low], [high - s.pass_rate]], fmt="o", capsize=4,
                        label=f"{s.variant}: {s.passed}/{s.cases} passed, score {s.mean_score:.2f}")
        ax.set_xlabel("cost of the eval ($)" if in_dollars else "tokens of the eval (a model's price is unknown)")
        ax.set_ylabel("pass rate (95% interval)")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{len(summaries)} variant{'s' * (len(summaries) != 1)} over "
                     f"{max((s.cases for s in summaries), default=0)} cases")
        ax.margins(x=0.25)  # room for the legend beside the points
        ax.legend(loc="best", fontsize="small")
        ax.figure.tight_layout()
        return ax.figure

    def save(self, path: str | Path) -> Path:
        """JSON Lines: one line of metadata (the variants' fingerprints), then one line a record."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"kind": "eval", "variants": self.variants, "seconds": round(self.seconds, 3)})]
        lines += [json.dumps({"kind": "record", **asdict(r)}, ensure_ascii=False) for r in self.records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def load_results(path: str | Path) -> EvalResults:
    """Results saved by `EvalResults.save`; a file that is not one is a `ValueError` naming it."""
    try:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        meta, records = rows[0], rows[1:]
        if meta.get("kind") != "eval" or any(r.get("kind") != "record" for r in records):
            raise ValueError("not written by EvalResults.save")
        return EvalResults([Record(**{k: v for k, v in r.items() if k != "kind"} | {
            "grades": [Grade(**g) for g in r["grades"]]}) for r in records], meta["variants"], meta.get("seconds", 0.0))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise ValueError(f"{path}: not eval results ({err})") from None


def wilson(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a pass rate: honest at small n and at 0% or 100%.

    >>> [round(x, 2) for x in wilson(9, 10)]
    [0.6, 0.98]
    >>> wilson(0, 0)
    (0.0, 1.0)
    """
    if n == 0:
        return (0.0, 1.0)
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def regressions(current: EvalResults, baseline: EvalResults) -> list[str]:
    """One line per variant of `current` whose pass rate fell below its baseline's beyond noise (below the
    baseline's 95% interval), naming the cases that passed in the baseline and fail now; [] when none did.
    A variant is compared with the baseline's variant of the same name, or else with the baseline's first."""
    if not baseline.variants:
        raise ValueError("the baseline holds no variant")
    before = {s.variant: s for s in baseline.summaries()}
    lines = []
    for now in current.summaries():
        ref = before.get(now.variant) or before[baseline.variants[0]["variant"]]
        if now.pass_rate < ref.interval[0]:
            was = {r.case for r in baseline.of(ref.variant) if r.passed}
            worse = sorted(r.case for r in current.of(now.variant) if not r.passed and r.case in was)
            lines.append(f"{now.variant}: pass rate {now.pass_rate:.0%}, below {ref.variant}'s {ref.pass_rate:.0%} "
                         f"beyond noise (its 95% interval starts at {ref.interval[0]:.0%}); regressed: "
                         f"{', '.join(worse) or 'none of its cases (they are new)'}")
    return lines
