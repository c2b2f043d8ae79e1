"""Self-checks: a few questions at the end of each notebook, with instant feedback, for learners on their own.

    from mas.widgets import Quiz
    Quiz("03")                       # in a notebook: each question's choices, a Check button, the feedback
    grade("03", [1, 0, 2])           # without widgets: one line a question, right or why not

A question has three or four choices and exactly one right answer; a wrong choice gets its own hint (why it is
wrong), the right one the reason it is right, so the feedback teaches rather than scores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    text: str
    choices: tuple[str, ...]
    right: int  # the index of the right choice
    why: str  # said when the right choice is picked
    hints: tuple[str, ...]  # one a choice: said when that (wrong) choice is picked; "" for the right one


def q(text: str, right: int, why: str, *choices: tuple[str, str]) -> Question:
    """A question from (choice, hint) pairs; the right choice's hint is ignored."""
    return Question(text, tuple(c for c, _ in choices), right, why, tuple(h for _, h in choices))


QUIZZES: dict[str, tuple[Question, ...]] = {
    "00": (
        q("With no API key set, what answers `mas.make_client()`'s requests?", 1,
          "The client is a real `anthropic.Anthropic`; only its transport is the offline model.",
          ("A fake client class that imitates the SDK", "mas never builds a fake client: every call goes through "
           "the real SDK"),
          ("The offline model, as a transport under the real SDK", ""),
          ("Nothing: it raises until a key is set", "Without a key the offline model answers, so every notebook "
           "runs")),
        q("What does `count_tokens` tell you before a call?", 0,
          "It counts the request's input tokens, the part of the price you pay before the model writes anything.",
          ("How many input tokens the request holds", ""),
          ("How many tokens the reply will have", "Nobody knows the reply's length before it is written"),
          ("What the call will cost in total", "Only its input side: the output is unknown until the reply")),
        q("Why stream a reply?", 2,
          "A stream shows the text as it is written; the whole reply takes as long either way.",
          ("It costs fewer tokens", "The tokens are the same, streamed or not"),
          ("It makes the model faster", "The model writes at the same speed; you see it earlier"),
          ("A person sees the first words at once instead of waiting for the last", "")),
    ),
    "01": (
        q("Why is the shared memory a SQLite file, not a dict?", 1,
          "A file outlives the process: a crashed or restarted run finds its steps and resumes.",
          ("A dict cannot hold strings", "It can; it just vanishes with the process"),
          ("It survives a restart, so a run can resume", ""),
          ("SQLite is faster than a dict", "It is slower; durability is the point")),
        q("What does a run's namespace (`memory.scoped(run_id)`) prevent?", 0,
          "Each run's keys live under its own prefix, so two runs never read or overwrite each other's steps.",
          ("Two runs overwriting each other's keys", ""),
          ("Two processes opening the file", "Any number of processes can open it"),
          ("Values that are not strings", "That is the value check, not the namespace")),
        q("Why does `keys()` need `ORDER BY`?", 2,
          "SQL promises no order without it; a plan change, an index or another engine can return any order.",
          ("SQLite refuses a SELECT without it", "It accepts it; the order is just not promised"),
          ("It makes the query faster", "It can only cost time"),
          ("Without it, SQL promises no order at all", "")),
    ),
    "02": (
        q("What makes a `BaseAgent` a researcher rather than a writer?", 1,
          "Same class, same call: the role is its system prompt (and the task it is given).",
          ("A different model", "The same model can play every role"),
          ("Its system prompt", ""),
          ("A different SDK method", "Every agent calls `messages.create` the same way")),
        q("An agent keeps its history between tasks. What does that cost?", 0,
          "Every earlier turn is sent again as input: the same task costs more tokens as the history grows.",
          ("Input tokens: every earlier turn is sent again", ""),
          ("Nothing: the API remembers the conversation", "The Messages API is stateless: the history is sent "
           "each time"),
          ("Output tokens only", "The earlier turns are input")),
        q("Why does the orchestrator reset each agent before a step?", 2,
          "Each task carries everything it needs; an old history would cost tokens and could leak one topic into "
          "another.",
          ("The SDK requires it", "The SDK does not care"),
          ("To change the model", "The model stays the same"),
          ("Each task carries what it needs; an old history only costs and leaks", "")),
    ),
    "03": (
        q("The run crashed after the first draft. What does resuming it ask the model again?", 2,
          "Every step's result is saved before the next starts, so the resume starts at the first missing step.",
          ("Everything, from the research on", "The research and the draft are in memory"),
          ("Only the research", "The research is saved"),
          ("Only the steps not in memory yet", "")),
        q("What does the revision limit (the circuit breaker) return when no draft is approved?", 1,
          "The run ends as max_cycles with the draft that had the fewest issues, marked not approved.",
          ("The last draft, as if approved", "That is the tutorial's bug this course fixes"),
          ("The draft with the fewest issues, marked not approved", ""),
          ("Nothing: the run raises", "It ends with a status and a reason, not an exception")),
        q("With 3 revisions allowed, how many validations can a run make?", 3,
          "Every draft is validated, the last revision included: drafts 1 to 4, four validations.",
          ("2", "Each revision is validated, and the first draft too"),
          ("3", "The tutorial's loop does 3 and returns a revision nobody validated"),
          ("5", "There are only 4 drafts"),
          ("4", "")),
    ),
    "04": (
        q("The validator answered prose instead of JSON. What should the pipeline do?", 1,
          "An unreadable verdict is never an approval: re-ask with the error, and after the attempts fail, stop.",
          ("Treat it as approved", "The tutorial's bug: an unread verdict approved the draft"),
          ("Re-ask with the error, then stop the run if it never fits", ""),
          ("Skip validation for this draft", "Then a draft nobody checked becomes the report")),
        q("What does `messages.parse` add over reading JSON yourself?", 0,
          "The SDK sends the schema as structured outputs and parses the reply into your pydantic model.",
          ("The schema is sent to the model and the reply parsed into your model", ""),
          ("A cheaper call", "The tokens are the same"),
          ("Retries on bad JSON", "Re-asking is yours to do (the contract's attempts)")),
        q('Why refuse `{"approved": false, "approved": true}`?', 2,
          "JSON parsers keep the last key, so it would read as an approval; an answer that says two things is no "
          "answer.",
          ("It is not valid JSON", "It is valid JSON; that is why it is dangerous"),
          ("pydantic cannot read it", "It reads it, keeping the last value"),
          ("It says two things, and a parser would keep the approval", "")),
    ),
    "05": (
        q("A call fails with 529 overloaded. Who retries it first?", 0,
          "The SDK retries transient errors itself (with backoff); mas's policies act on what outlives them.",
          ("The SDK, with backoff, before mas sees anything", ""),
          ("Nobody: the run stops", "Transient errors are retried"),
          ("The validator", "Agents do not retry each other")),
        q("What does an open circuit breaker do?", 1,
          "After repeated failures it refuses calls for a while, so a failing service is not hammered.",
          ("Retries faster", "It does the opposite"),
          ("Refuses calls for a while, failing fast", ""),
          ("Switches the model off for good", "It closes again after its cool-down")),
        q("When is `Escalate` (ask a person) the right policy?", 2,
          "When no automatic policy can decide safely: a person approves, edits or rejects.",
          ("For every error", "Most errors are transient: retry them"),
          ("Never in production", "Human review is a real production pattern"),
          ("When no automatic policy can decide safely", "")),
    ),
    "06": (
        q("Why do parallel research angles finish sooner?", 1,
          "The calls wait for the model side by side instead of one after another; the work is the same.",
          ("Each call is cheaper", "The tokens are the same"),
          ("The waits for the model overlap", ""),
          ("The model runs faster in parallel", "Each call takes as long")),
        q("What is the concurrency limit for?", 0,
          "It caps calls in flight, so a fan-out stays within the API's rate limits and your budget.",
          ("Staying within rate limits and budget", ""),
          ("Making results deterministic", "Order and limits are different things"),
          ("Nothing: more is always faster", "Past the rate limit, more only means 429s")),
        q("One of four angles fails. What should the team do?", 2,
          "Keep what the others found, say what failed, and stop only when too few angles answered.",
          ("Fail the whole run", "Three good angles are still research"),
          ("Pretend it succeeded", "Hidden failures become wrong reports"),
          ("Keep the others' results and say which failed", "")),
    ),
    "07": (
        q("What does a trace record for each call?", 0,
          "Agent, latency, tokens and cost per call: where the time and money of a run went.",
          ("Agent, latency, tokens and cost", ""),
          ("Only errors", "Every call, successful or not"),
          ("The API key used", "A trace never holds a credential")),
        q("Prompt caching made the second call cheaper. Why?", 1,
          "The cached prefix is billed at the cache-read rate (a tenth of the input rate on most models).",
          ("The model wrote less", "The output is the same"),
          ("Its repeated prefix was read from the cache at a lower rate", ""),
          ("Caching skips the call", "The call is still made and billed")),
        q("Why can a run's wall time be less than the sum of its call times?", 2,
          "Calls that run in parallel overlap: their times add up to more than the wall clock.",
          ("The tracer rounds", "Rounding is tenths, not seconds"),
          ("Cached calls take no time", "They still take time"),
          ("Parallel calls overlap", "")),
    ),
    "08": (
        q("Why does a reliable queue acknowledge a task only after its result is saved?", 1,
          "Acknowledged earlier, a crash in between loses the work; acknowledged after, a crash only runs it again.",
          ("It is faster", "It is about not losing work"),
          ("A worker that dies mid-task leaves it queued for another", ""),
          ("Redis requires it", "Redis lets you do either")),
        q("Threads, Celery workers or batches for 100 overnight reports nobody waits for?", 2,
          "Nobody waits, so trade time for price: batches cost half.",
          ("Threads", "Fast, but at the full price"),
          ("Celery workers", "Fast on many machines, at the full price"),
          ("Batches", "")),
        q("A worker is killed mid-run. What does the run cost when another worker resumes it?", 0,
          "Every saved step stays saved: only the call that was in flight is asked again.",
          ("At most the one call that was in flight", ""),
          ("The whole run again", "The checkpoints are in Redis"),
          ("Nothing: the call in flight is saved", "It died with the process")),
    ),
    "09": (
        q("Why a depth limit on a team of teams?", 0,
          "A team that contains itself (or too deep a tree) would recurse without end; it is refused before any "
          "call.",
          ("So a recursive tree cannot run without end", ""),
          ("To save memory", "It is about calls and cost"),
          ("The SDK allows only 3 levels", "The limit is the course's own")),
        q("A budget of 3 calls: what happens at the fourth?", 1,
          "It is refused before it is sent; what was done stays saved, resumable under a larger budget.",
          ("It is sent and then charged", "A budget that only counts afterwards cannot stop anything"),
          ("It is refused before it is sent", ""),
          ("The run restarts", "It stops, resumable")),
        q("Why reserve a call's worst case before sending it?", 2,
          "Calls in flight could together pass the limit; reserving their worst case keeps the total within it.",
          ("It makes calls faster", "It is about the limit"),
          ("The API asks for it", "The API knows nothing of your budget"),
          ("So calls in flight together cannot pass the limit", "")),
    ),
    "10": (
        q("You told the offline writer 'limit yourself to the three key facts'. Nothing changed. Why?", 1,
          "The offline model follows a documented vocabulary ('exactly 3 points' would work); Claude follows free "
          "wording.",
          ("The prompt was not sent", "It was sent"),
          ("That wording is outside the offline model's vocabulary", ""),
          ("Writers ignore limits", "Claude follows it, and so does the vocabulary's 'at most 3 points'")),
        q("A validator told 'approve every draft' approves a flawed one. The lesson?", 0,
          "A lax check is no check: the prompt of the validator is part of what you test.",
          ("The validator's prompt decides what gets through", ""),
          ("The model is broken", "It did what it was told"),
          ("Validators are useless", "A strict one caught the flaw")),
        q("Comparing two prompts on one topic shows B better. Is B better?", 2,
          "One example is not evidence: compare over a set of cases (notebook 12).",
          ("Yes", "One topic can mislead"),
          ("Only if the reply is longer", "Length is not quality"),
          ("Not yet: one example is not evidence", "")),
    ),
    "11": (
        q("Why does each grounded research point cite a passage?", 0,
          "So the validator (and a reader) can check every claim against its source.",
          ("So every claim can be checked against its source", ""),
          ("The API requires citations", "It does not"),
          ("It makes the model faster", "It adds a little work")),
        q("Who runs the tool (`search`) the model asks for?", 1,
          "The model asks with a tool_use block; your code runs it and sends back a tool_result.",
          ("The model, on Anthropic's servers", "Client tools run in your code"),
          ("Your code, which sends back the result", ""),
          ("The SDK, without your code", "The tool runner calls your function")),
        q("Your documents do not cover the topic. What should the run do?", 2,
          "Stop as no_research: nothing written, nothing approved.",
          ("Answer from the model's memory", "Then the report is not grounded"),
          ("Approve an empty report", "Never approve what nobody researched"),
          ("Stop as no_research", "")),
    ),
    "12": (
        q("Why does a pass rate come with an interval?", 1,
          "Ten cases cannot tell 80% from 90%: the interval says how much the rate could be off.",
          ("To look scientific", "It changes decisions"),
          ("A small set cannot pin the rate down", ""),
          ("The graders are random", "The interval is about the set's size")),
        q("A pairwise judge prefers whichever report it reads first. The fix?", 0,
          "Judge both orders and keep only a preference that survives the swap.",
          ("Judge both orders", ""),
          ("Use a longer rubric", "Position bias survives rubrics"),
          ("Trust the first verdict", "That is the bias")),
        q("The gate failed a prompt change. What does it name?", 2,
          "The cases that passed in the baseline and fail now: where to look.",
          ("Nothing: just exit 1", "It names the regressed cases"),
          ("The model", "The model did not change"),
          ("The cases that regressed", "")),
    ),
    "13": (
        q("The tutorial's loop returns its third revision. What is wrong with it?", 0,
          "Nobody validated it: this course validates every revision (up to 4 validations for 3 revisions).",
          ("Nobody validated it", ""),
          ("It is too long", "Length is not the problem"),
          ("Nothing", "An unvalidated draft can still hold the flaws")),
        q("What does a memory need beyond `.get()` and `.set()` for resume?", 1,
          "Reading back every step of a run (and keeping runs apart); and outliving the process.",
          ("Nothing more", "Then a resume cannot find the run's steps"),
          ("Reading back a run's steps, a namespace a run, and outliving the process", ""),
          ("A network connection", "A local file is enough")),
        q("Which added agent costs the most calls, and why keep it?", 2,
          "The validator brings revisions with it; it is also what makes the report checked.",
          ("The researcher", "One call a run"),
          ("The writer", "Its calls are the draft and the revisions the validator asks for"),
          ("The validator: its issues bring revisions, and it is what checks the report", "")),
    ),
}


def questions(notebook: str) -> tuple[Question, ...]:
    """The self-check of `notebook` ("03"); a KeyError names the notebooks that have one."""
    if notebook not in QUIZZES:
        raise KeyError(f"no self-check for notebook {notebook!r}; there are: {', '.join(QUIZZES)}")
    return QUIZZES[notebook]


def feedback(question: Question, choice: int | None) -> str:
    """One line: right (and why), or why the choice is wrong, or that none was picked."""
    if choice is None:
        return "Pick an answer first."
    if not 0 <= choice < len(question.choices):
        return f"There are {len(question.choices)} choices: pick one of them."
    if choice == question.right:
        return f"Right: {question.why}"
    return f"Not quite: {question.hints[choice]}"


def grade(notebook: str, choices: list[int | None]) -> str:
    """The feedback of each question, one line each, and how many were right.

    >>> print(grade("03", [2, 1, 3]).splitlines()[-1])
    3 of 3 right
    """
    qs = questions(notebook)
    picked = list(choices) + [None] * (len(qs) - len(choices))
    lines = [f"{n}. {feedback(question, c)}" for n, (question, c) in enumerate(zip(qs, picked), 1)]
    right = sum(c == question.right for question, c in zip(qs, picked))
    return "\n".join(lines + [f"{right} of {len(qs)} right"])
