"""The Message Batches API of the offline model, through the SDK's own `client.messages.batches`: in process,
and under `mas serve`."""

from __future__ import annotations

import time

import anthropic
import pytest

from mas.client import make_client, text_of
from mas.offline import Latency, OfflineTransport
from mas.prompts import SYSTEM_PROMPTS, research_task

MODEL = "claude-opus-4-6"


def params(topic: str) -> dict:
    return {"model": MODEL, "max_tokens": 1500, "system": SYSTEM_PROMPTS["researcher"],
            "messages": [{"role": "user", "content": research_task(topic, "engineers")}]}


TOPICS = {"vectors": "How vector databases enable semantic search", "rag": "Retrieval-augmented generation",
          "cap": "The CAP theorem"}


def batch_of(client, ids=TOPICS):
    return client.messages.batches.create(requests=[{"custom_id": i, "params": params(TOPICS[i])} for i in ids])


def test_a_batch_answers_each_request_as_messages_create_would():
    client = make_client(transport=OfflineTransport())
    batch = batch_of(client)
    assert batch.type == "message_batch" and batch.processing_status == "ended"  # no latency: done at once
    assert batch.request_counts.succeeded == 3 and batch.results_url.endswith(f"/{batch.id}/results")
    assert client.messages.batches.retrieve(batch.id).id == batch.id
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert set(results) == set(TOPICS) and {r.type for r in results.values()} == {"succeeded"}
    for custom_id, result in results.items():  # the same request answered alone gives the same text
        assert text_of(result.message) == text_of(client.messages.create(**params(TOPICS[custom_id])))


def test_a_batch_takes_its_requests_simulated_time_and_has_no_results_before_it_ends():
    client = make_client(transport=OfflineTransport(latency=Latency(base=0.15)))
    batch = batch_of(client)
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        list(client.messages.batches.results(batch.id))
    time.sleep(0.5)
    done = client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.ended_at is not None and done.request_counts.succeeded == 3


def test_faults_become_per_request_results_not_a_failed_batch():
    client = make_client(transport=OfflineTransport(faults="server_error@2,timeout@3"))
    batch = batch_of(client)
    assert (batch.request_counts.succeeded, batch.request_counts.errored, batch.request_counts.expired) == (1, 1, 1)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert [results[i].type for i in TOPICS] == ["succeeded", "errored", "expired"]
    assert results["rag"].error.error.type == "api_error"


def test_cancel_list_and_the_api_checks():
    client = make_client(transport=OfflineTransport(latency=Latency(base=5)))
    slow = batch_of(client)
    canceled = client.messages.batches.cancel(slow.id)
    assert canceled.processing_status == "ended" and canceled.request_counts.canceled == 3
    assert {r.result.type for r in client.messages.batches.results(slow.id)} == {"canceled"}
    more = [batch_of(client, ["cap"]) for _ in range(2)]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == [more[1].id, more[0].id] and page.has_more
    assert [b.id for b in client.messages.batches.list(limit=2)] == [more[1].id, more[0].id, slow.id]  # all pages
    with pytest.raises(anthropic.BadRequestError, match="custom_id must be unique"):
        client.messages.batches.create(requests=[{"custom_id": "a", "params": params("x")}] * 2)
    with pytest.raises(anthropic.BadRequestError, match="custom_id: 1 to 64"):
        client.messages.batches.create(requests=[{"custom_id": "no spaces", "params": params("x")}])
    with pytest.raises(anthropic.NotFoundError, match="msgbatch_nope"):
        client.messages.batches.retrieve("msgbatch_nope")
    bad = client.messages.batches.create(requests=[{"custom_id": "a", "params": {"model": MODEL, "messages": []}}])
    [result] = client.messages.batches.results(bad.id)
    assert result.result.type == "errored" and result.result.error.error.type == "invalid_request_error"


def test_mas_serve_serves_batches_to_any_client(tmp_path, loopback_http):
    from test_serve import serving

    with serving(tmp_path) as server:
        client = anthropic.Anthropic(api_key="sk-ant-" + "batch-" + "x" * 12, base_url=server.url)
        batch = batch_of(client, ["vectors"])
        [result] = client.messages.batches.results(batch.id)
        assert result.custom_id == "vectors" and result.result.type == "succeeded"
        assert "## Research" in text_of(result.result.message)
