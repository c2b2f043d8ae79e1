"""The Message Batches API of the offline model: create, retrieve, list, cancel, and results as JSON Lines.

A batch's requests are answered when it is created, each as `POST /v1/messages` would answer it (the fault plan
included: an HTTP fault becomes that request's `errored` result, a `timeout` its `expired` one, a damaged reply a
`succeeded` one holding the damage), and the batch stays `in_progress` for the simulated latency of its slowest
request (none by default: it ends at once): the API works on a batch's requests in parallel. A real batch takes
longer than that, up to 24 hours (most end within the hour); what the offline model keeps is that a batch is
asked, then waited for, then read. Cancelling an unfinished
batch cancels every request in it. Results come in request order (the API does not promise an order: match
them by `custom_id`). As the API: at most 100,000 requests a batch, `custom_id`s unique, 1 to 64 characters.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import httpx2

from mas.offline import wire

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PATH = re.compile(r"^/v1/messages/batches(?:/(?P<id>[^/]+)(?:/(?P<action>cancel|results))?)?/?$")


@dataclass
class Batch:
    id: str
    created: float
    ends: float  # when processing ends (the simulated time of its requests)
    results: list[dict]  # {"custom_id", "result"}, in request order
    canceled_at: float | None = None
    extra: dict = field(default_factory=dict)

    def ended(self, now: float) -> bool:
        return self.canceled_at is not None or now >= self.ends

    def view(self, now: float) -> dict:
        done = self.ended(now)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for r in self.results:
            counts[r["result"]["type"] if done else "processing"] += 1
        return {"id": self.id, "type": "message_batch", "processing_status": "ended" if done else "in_progress",
                "request_counts": counts, "created_at": _stamp(self.created), "expires_at": _stamp(self.created + 86400),
                "ended_at": _stamp(self.canceled_at or self.ends) if done else None, "archived_at": None,
                "cancel_initiated_at": _stamp(self.canceled_at) if self.canceled_at else None,
                "results_url": f"/v1/messages/batches/{self.id}/results" if done else None}


class Batches:
    """The batches one offline model holds; `answer` handles a request to /v1/messages/batches..."""

    def __init__(self, create_one: Callable[[dict], Any], lock: Any):
        self.create_one, self.lock = create_one, lock
        self.held: dict[str, Batch] = {}

    def answer(self, request: httpx2.Request) -> httpx2.Response:
        m = PATH.match(request.url.path)
        if m is None:
            return wire.error_response(404, "not_found_error", f"{request.method} {request.url.path}: not found")
        batch_id, action, method = m["id"], m["action"], request.method
        if batch_id is None:
            if method == "POST":
                return self._create(request)
            if method == "GET":
                return self._list(request.url.params)
        else:
            with self.lock:
                batch = self.held.get(batch_id)
            if batch is None:
                return wire.error_response(404, "not_found_error", f"message batch {batch_id!r} not found")
            now = time.time()
            if method == "GET" and action is None:
                return wire.json_response(200, batch.view(now))
            if method == "POST" and action == "cancel":
                if not batch.ended(now):
                    batch.canceled_at = now
                    batch.results = [{**r, "result": {"type": "canceled"}} for r in batch.results]
                return wire.json_response(200, batch.view(now))
            if method == "GET" and action == "results":
                if not batch.ended(now):
                    return wire.error_response(400, "invalid_request_error",
                                               f"message batch {batch_id} is still in progress: no results yet")
                lines = "".join(json.dumps(r) + "\n" for r in batch.results)
                return httpx2.Response(200, content=lines.encode(), headers={"content-type": "application/binary"})
        return wire.error_response(405, "invalid_request_error", f"{method} {request.url.path}: method not allowed")

    def _create(self, request: httpx2.Request) -> httpx2.Response:
        try:
            body = json.loads(request.read() or b"{}")
        except (ValueError, RecursionError):
            return wire.error_response(400, "invalid_request_error", "request body is not valid JSON")
        requests = body.get("requests") if isinstance(body, dict) else None
        if problem := _invalid(requests):
            return wire.error_response(400, "invalid_request_error", problem)
        results, seconds = [], 0.0
        for item in requests:
            answer = self.create_one({**item["params"], "stream": False})
            results.append({"custom_id": item["custom_id"], "result": _result(answer)})
            seconds = max(seconds, answer.delay)
        now = time.time()
        with self.lock:
            batch = Batch("msgbatch_" + wire.digest([body, len(self.held)]), now, now + seconds, results)
            self.held[batch.id] = batch
        return wire.json_response(200, batch.view(now))

    def _list(self, params: Any) -> httpx2.Response:
        now = time.time()
        with self.lock:
            batches = sorted(self.held.values(), key=lambda b: b.created, reverse=True)  # the newest first
        ids = [b.id for b in batches]
        if (after := params.get("after_id")) in ids:
            batches = batches[ids.index(after) + 1:]
        if (before := params.get("before_id")) in ids:
            batches = batches[:ids.index(before)]
        limit = min(max(int(params.get("limit", 20) or 20), 1), 1000)
        page = batches[:limit]
        return wire.json_response(200, {"data": [b.view(now) for b in page], "has_more": len(batches) > limit,
                                        "first_id": page[0].id if page else None,
                                        "last_id": page[-1].id if page else None})


def _invalid(requests: Any) -> str | None:
    if not isinstance(requests, list) or not requests:
        return "requests: a list of at least one request is required"
    if len(requests) > MAX_REQUESTS:
        return f"requests: at most {MAX_REQUESTS:,} in a batch, got {len(requests):,}"
    ids = []
    for n, item in enumerate(requests):
        if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
            return f"requests.{n}: an object with custom_id and params is required"
        if not isinstance(item.get("custom_id"), str) or not CUSTOM_ID.match(item["custom_id"]):
            return f"requests.{n}.custom_id: 1 to 64 letters, digits, _ or -"
        ids.append(item["custom_id"])
    if len(set(ids)) != len(ids):
        return "requests: custom_id must be unique within a batch"
    return None


def _result(answer: Any) -> dict:
    """One request's result, from what `POST /v1/messages` answered it."""
    if answer.timeout:
        return {"type": "expired"}
    if answer.message is not None:
        return {"type": "succeeded", "message": answer.message}
    body = json.loads(answer.response.content)  # the API's error body: {"type": "error", "error": {...}}
    return {"type": "errored", "error": body}


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")
