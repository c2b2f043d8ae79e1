"""Many runs through the Message Batches API, one step a batch, at half the price.

    with SQLiteMemory("data/memory.db") as memory:
        done = BatchRunner(memory, name="week-48").run(["Consensus algorithms", "Prompt caching", ...])
    print(done.table())                      # each run's status, revisions, calls and cost; the totals

How it works: the orchestrator runs every run, as it always does (checkpointed, resumable, leased), on a client
whose transport answers each request from the batch results saved in the run's memory (`BatchAnswers`). A
request with no saved answer yet raises `AwaitingBatch` under the SDK: the run stops as `awaiting_batch` with
nothing half-written, and the request waits. The runner sends every run's waiting request in one batch
(`client.messages.batches.create`, one `custom_id` a request), waits for it to end (`retrieve`, polling with
backoff), and saves each result in its run's memory as it reads it (`results`, matched by `custom_id`). The next
round runs the runs again: each takes its answer, goes one step further, and stops at its next request. So a run
takes a round a call (5 for a run approved after one revision): batches trade latency for price.

A crash costs no request twice: the batch's id is saved before the runner waits for it, and each result as soon
as it is read; a runner started again with the same name (the same topics) waits for that batch again instead of
sending a new one. A request's `custom_id` is its run and a digest of the request itself, so an answer can only
ever answer the request it was asked for.

A request's failure stays that run's: an `errored` result is the API error the SDK raises for it (as it would
live), an `expired` or `canceled` one stops the run as failed with that reason; the other runs go on. Running
the same batch again sends only those requests again.

Simplified on purpose: one batch a round (the API takes up to 100,000 requests or 256 MB a batch); the runs of
one round wait for its slowest request; the runner's own client sends the batches, so hooks (a `Tracer`, a
`Budget`) see each run's calls as they are answered, not the batches.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Sequence

import anthropic
import httpx2

from mas.client import default_model, make_client
from mas.contracts import RunResult
from mas.errors import AwaitingBatch
from mas.memory import Lease, Memory
from mas.orchestrator import Orchestrator
from mas.pricing import cost, dollars
from mas.prompts import DEFAULT_AUDIENCE

NAME = re.compile(r"^[a-zA-Z0-9-]{1,40}$")  # a run id is NAME-NNN; a custom_id is that, "_" and 16 hex digits
ANSWER = "answer_"  # a run's memory key of a saved result: ANSWER + the request's digest
STATUS_OF_ERROR = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                   "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                   "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}


class BatchRequestUnanswered(anthropic.AnthropicError):
    """A batch request the API did not answer: it expired (not processed within 24 hours) or was canceled."""


def digest(params: dict) -> str:
    """What identifies a request: 16 hex digits of its body (sorted-keys JSON, without `stream`).

    >>> digest({"model": "m", "max_tokens": 5}) == digest({"max_tokens": 5, "model": "m", "stream": False})
    True
    """
    body = json.dumps({k: v for k, v in params.items() if k != "stream"}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class BatchAnswers(httpx2.BaseTransport):
    """The transport under the runs' client: each request answered from its run's saved result, or held for
    the next batch (`asked`, custom_id -> params) with `AwaitingBatch` raised."""

    def __init__(self) -> None:
        self.run_id, self.saved, self.asked = "", {}, {}

    def serve(self, run_id: str, memory: Memory) -> None:
        """Answer the run `run_id` next, from the results saved in its memory."""
        self.run_id = run_id
        self.saved = {k[len(ANSWER):]: v for k, v in memory.get_all().items() if k.startswith(ANSWER)}

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or request.url.path != "/v1/messages":
            body = {"type": "error", "error": {"type": "invalid_request_error", "message":
                    f"{request.method} {request.url.path}: a batch answers only POST /v1/messages"}}
            return httpx2.Response(400, json=body)
        params = {k: v for k, v in json.loads(request.read()).items() if k != "stream"}
        key = digest(params)
        saved = self.saved.get(key)
        if saved is None:
            custom_id = f"{self.run_id}_{key}"
            self.asked[custom_id] = params
            raise AwaitingBatch(f"waiting for the answer to request {custom_id} (the next batch sends it)")
        result = json.loads(saved)
        if result["type"] == "succeeded":
            return httpx2.Response(200, json=result["message"])
        if result["type"] == "errored":  # the API's error body: the SDK raises its own error for it, as live
            error = result["error"]
            return httpx2.Response(STATUS_OF_ERROR.get(error.get("error", {}).get("type"), 500), json=error)
        raise BatchRequestUnanswered(f"the batch request for {self.run_id} was {result['type']}: "
                                     + ("not processed within 24 hours" if result["type"] == "expired" else
                                        "the batch was canceled") + "; run the batch again to send it again")


@dataclass
class BatchResults:
    """What a batch job did: each run's result, the batches sent, and the job's time."""

    name: str
    model: str
    results: list[RunResult]
    batches: list[str]
    requests: int  # requests sent in this job's batches
    seconds: float

    def cost(self, *, batch: bool = True) -> float | None:
        """Dollars for every run's calls: at the batch price, or with `batch=False` what they would cost sent
        one by one (None when the model has no price)."""
        costs = [cost(self.model, r.usage, batch=batch) for r in self.results]
        return None if None in costs else sum(costs)  # type: ignore[arg-type]

    def table(self) -> str:
        from mas.tracing import format_table

        rows = [{"run": r.run_id, "topic": r.topic[:40], "status": r.status, "revisions": r.cycles,
                 "calls": r.usage.calls, "cost": dollars(cost(self.model, r.usage, batch=True))} for r in self.results]
        statuses: dict[str, int] = {}
        for r in self.results:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        return (format_table(rows) + f"\n{len(self.results)} runs: {summary}; {self.requests} requests in "
                f"{len(self.batches)} batches; cost {dollars(self.cost())} at the batch price "
                f"({dollars(self.cost(batch=False))} one call at a time)")


class BatchRunner:
    """Runs many topics through the Message Batches API, every run checkpointed in `memory` (see the module
    docstring). `client` sends the batches (live or offline, as `make_client()` chooses); the runs'
    own agents are answered from the results."""

    def __init__(self, memory: Memory, client: anthropic.Anthropic | None = None, *, name: str = "batch",
                 model: str | None = None, max_revision_cycles: int = 3, max_tokens: int = 2048,
                 poll_seconds: tuple[float, float] = (0.05, 30.0), progress: Any = print):
        if not NAME.match(name):
            raise ValueError(f"a batch name is 1 to 40 letters, digits or '-', got {name!r}")
        self.memory, self.name, self.progress = memory, name, progress
        self.client = client or make_client()
        self.model = model or default_model()
        self.first_poll, self.max_poll = poll_seconds
        self.answers = BatchAnswers()
        self.orchestrator = Orchestrator(memory, make_client(transport=self.answers, max_retries=0),
                                         max_revision_cycles, model=self.model, max_tokens=max_tokens, progress=None)
        self.state = memory.scoped(f"batches/{name}")

    def run(self, topics: Sequence[str], audience: str = DEFAULT_AUDIENCE) -> BatchResults:
        """Every topic to its end (approved, max_cycles, no_research or failed), a batch a round; or, for a
        name run before, the same job resumed where it stopped (the topics must be the same)."""
        start = time.monotonic()
        with Lease(self.state) as lease:
            run_ids = self._runs(list(topics), audience)
            sent_before = len(self._sent())
            self._read_unread(lease)  # a batch sent before a crash: wait for it, never send it again
            self._forget_failed_answers(run_ids)
            waiting, requests, results = dict.fromkeys(run_ids), 0, {}
            while True:
                self.answers.asked = {}
                for run_id in list(waiting):
                    self.answers.serve(run_id, self.memory.scoped(run_id))
                    results[run_id] = self.orchestrator.run(run_id=run_id)
                    if results[run_id].status != "awaiting_batch":
                        del waiting[run_id]
                if not waiting:
                    break
                requests += self._send(dict(self.answers.asked), lease)
            return BatchResults(self.name, self.model, [results[r] for r in run_ids], self._sent()[sent_before:],
                                requests, time.monotonic() - start)

    # ------------------------------------------------------------------ one batch

    def _send(self, asked: dict[str, dict], lease: Lease) -> int:
        batch = self.client.messages.batches.create(
            requests=[{"custom_id": custom_id, "params": params} for custom_id, params in asked.items()])
        self.state.set_many({"sent": json.dumps(self._sent() + [batch.id])})  # before the wait: a crash resumes it
        self._say(f"[Batch] {batch.id}: {len(asked)} request(s) sent")
        self._read_unread(lease)
        return len(asked)

    def _read_unread(self, lease: Lease) -> None:
        """Wait for the batches sent and not read yet, and save each result in its run's memory as it is read."""
        read = json.loads(self.state.get("read") or "[]")
        for batch_id in [b for b in self._sent() if b not in read]:
            pause = self.first_poll
            while (batch := self.client.messages.batches.retrieve(batch_id)).processing_status != "ended":
                lease.renew()
                time.sleep(pause)
                pause = min(pause * 2, self.max_poll)
            for item in self.client.messages.batches.results(batch_id):
                run_id, _, key = item.custom_id.rpartition("_")
                self.memory.scoped(run_id).set(ANSWER + key, item.result.model_dump_json())
            counts = batch.request_counts
            self._say(f"[Batch] {batch_id} ended: {counts.succeeded} succeeded, {counts.errored} errored, "
                      f"{counts.expired} expired, {counts.canceled} canceled")
            read.append(batch_id)
            self.state.set("read", json.dumps(read))

    # ------------------------------------------------------------------ the job

    def _runs(self, topics: list[str], audience: str) -> list[str]:
        """The job's run ids (NAME-001, ...), each run started in memory; a name used before must hold the same
        topics."""
        saved = self.state.get("topics")
        if saved is not None and json.loads(saved) != topics:
            raise ValueError(f"the batch {self.name!r} holds other topics: give this list another name")
        if not topics:
            raise ValueError("a batch needs at least one topic")
        if saved is None:
            self.state.set_many({"topics": json.dumps(topics, ensure_ascii=False), "audience": audience})
        run_ids = [f"{self.name}-{n:03d}" for n in range(1, len(topics) + 1)]
        for run_id, topic in zip(run_ids, topics):
            run = self.memory.scoped(run_id)
            if run.get("topic") is None:
                run.set_many({"topic": topic, "audience": self.state.get("audience") or audience,
                              "status": "awaiting_batch"})
        return run_ids

    def _forget_failed_answers(self, run_ids: list[str]) -> None:
        """A run that failed on a request's failed result gets that request sent again."""
        for run_id in run_ids:
            run = self.memory.scoped(run_id)
            if run.get("status") != "failed":
                continue
            for key, value in run.get_all().items():
                if key.startswith(ANSWER) and json.loads(value)["type"] != "succeeded":
                    run.delete(key)

    def _sent(self) -> list[str]:
        return json.loads(self.state.get("sent") or "[]")

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)
