"""mas.batches and `mas batch`: many runs through the Message Batches API, one step a batch, resumable, at half
the price; offline in process, and against `mas serve` with the runner killed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import anthropic
import pytest
from test_serve import serving

from mas.batches import BatchRunner
from mas.client import make_client
from mas.memory import SQLiteMemory
from mas.offline import OfflineTransport
from mas.orchestrator import Orchestrator
from mas.pricing import cost

TOPICS = ["Consensus algorithms", "Prompt caching", "How vector databases enable semantic search"]
FAKE_KEY = "sk-ant-" + "batch-" + "x" * 16


def requests_sent(client) -> int:
    """Every request of every batch the server holds (the API's own count)."""
    return sum(sum(dict(b.request_counts).values()) for b in client.messages.batches.list(limit=1000))


@pytest.fixture
def memory():
    with SQLiteMemory(":memory:") as m:
        yield m


def test_each_run_ends_as_it_would_one_call_at_a_time_at_half_the_price(memory):
    lines: list[str] = []
    client = make_client(transport=OfflineTransport())
    done = BatchRunner(memory, client, name="same", progress=lines.append).run([*TOPICS, "Sourdough bread baking"])
    with SQLiteMemory(":memory:") as alone:
        one_by_one = [Orchestrator(alone, client=make_client(transport=OfflineTransport()), progress=None).run(t)
                      for t in [*TOPICS, "Sourdough bread baking"]]
    assert [(r.status, r.report, r.cycles, r.usage) for r in done.results] == [
        (r.status, r.report, r.cycles, r.usage) for r in one_by_one]
    assert [r.status for r in done.results] == ["approved"] * 3 + ["no_research"]
    # a round a call: 5 batches for runs approved after one revision; the unknown topic ends after round 1
    assert len(done.batches) == 5 and done.requests == sum(r.usage.calls for r in one_by_one) == requests_sent(client)
    assert sum(line.endswith("request(s) sent") for line in lines) == 5
    assert done.cost() == pytest.approx(done.cost(batch=False) / 2)
    assert done.cost(batch=False) == pytest.approx(sum(cost(done.model, r.usage) for r in one_by_one))
    table = done.table()
    assert "same-004  Sourdough bread baking" in table and "4 runs: 3 approved, 1 no_research" in table
    again = BatchRunner(memory, client, name="same").run([*TOPICS, "Sourdough bread baking"])
    assert again.requests == 0 and again.batches == [] and again.results == done.results  # finished: nothing sent


def test_a_runner_that_crashes_waiting_for_a_batch_resumes_it_without_sending_it_again(memory):
    client = make_client(transport=OfflineTransport())
    sent = []

    def crash_at_the_third_batch(line: str) -> None:
        if line.endswith("request(s) sent"):
            sent.append(line)
            if len(sent) == 3:
                raise KeyboardInterrupt  # after the batch's id is saved, before any of its results is read

    with pytest.raises(KeyboardInterrupt):
        BatchRunner(memory, client, name="crash", progress=crash_at_the_third_batch).run(TOPICS)
    assert {memory.scoped(f"crash-00{n}").get("status") for n in (1, 2, 3)} == {"awaiting_batch"}
    resumed = BatchRunner(memory, client, name="crash", progress=None).run(TOPICS)
    with SQLiteMemory(":memory:") as clean:
        whole = BatchRunner(clean, make_client(transport=OfflineTransport()), name="crash", progress=None).run(TOPICS)
    assert [r.status for r in resumed.results] == ["approved"] * 3
    assert requests_sent(client) == whole.requests  # not one request sent twice
    assert len(resumed.batches) == 2 and resumed.requests == whole.requests - 9  # it waited for the third again
    assert [(r.report, r.usage) for r in resumed.results] == [(r.report, r.usage) for r in whole.results]


def test_a_failed_request_fails_its_run_only_and_running_again_sends_only_it(memory):
    # the second request of the first batch (the second topic's research) errors; the third expires
    client = make_client(transport=OfflineTransport(faults="server_error@2,timeout@3"))
    first = BatchRunner(memory, client, name="faults", progress=None).run(TOPICS)
    assert [r.status for r in first.results] == ["approved", "failed", "failed"]
    assert "500" in first.results[1].reason and "server" in first.results[1].reason.lower()
    assert "was expired: not processed within 24 hours" in first.results[2].reason
    assert first.requests == 5 + 1 + 1
    second = BatchRunner(memory, client, name="faults", progress=None).run(TOPICS)
    assert [r.status for r in second.results] == ["approved"] * 3
    assert second.requests == 10  # the two failed runs, whole: nothing of the approved one again
    assert second.results[0] == first.results[0]


def test_a_batch_is_named_and_keeps_its_topics(memory):
    with pytest.raises(ValueError, match="1 to 40 letters"):
        BatchRunner(memory, name="no spaces")
    with pytest.raises(ValueError, match="1 to 40 letters"):
        BatchRunner(memory, name="x" * 41)
    runner = BatchRunner(memory, make_client(transport=OfflineTransport()), name="kept", progress=None)
    with pytest.raises(ValueError, match="at least one topic"):
        runner.run([])
    runner.run(TOPICS[:1])
    with pytest.raises(ValueError, match="holds other topics: give this list another name"):
        runner.run(TOPICS[1:2])


def test_mas_batch_prints_the_table_resumes_and_says_mistakes_in_one_line(tmp_path, capsys):
    from mas.cli import main

    topics = tmp_path / "topics.txt"
    topics.write_text("# this week's topics\nConsensus algorithms\n\nPrompt caching\n", encoding="utf-8")
    db = tmp_path / "memory.db"
    assert main(["batch", str(topics), "--db", str(db), "--name", "week"]) == 0
    out = capsys.readouterr().out
    assert "week-001  Consensus algorithms" in out and "2 runs: 2 approved; 10 requests in 5 batches" in out
    assert main(["batch", str(topics), "--db", str(db), "--name", "week"]) == 0  # resumed: nothing to send
    assert "2 runs: 2 approved; 0 requests in 0 batches" in capsys.readouterr().out
    (tmp_path / "unknown.txt").write_text("Sourdough bread baking\n", encoding="utf-8")
    assert main(["batch", str(tmp_path / "unknown.txt"), "--db", str(db)]) == 1
    assert "mas: 1 of 1 runs not approved" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    for args, said in [([str(tmp_path / "absent.txt")], "absent.txt: no such file or directory"),
                       ([str(tmp_path / "empty.txt")], "no topics in it"),
                       ([str(topics), "--name", "bad name"], "1 to 40 letters"),
                       ([str(tmp_path / "unknown.txt"), "--name", "week"], "holds other topics")]:
        assert main(["batch", *args, "--db", str(db)]) == 2
        [line] = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("offline model")]
        assert said in line, line


def test_a_runner_killed_mid_batch_against_mas_serve_resumes_and_sends_nothing_twice(tmp_path, loopback_http):
    """A real server keeps the batches; the runner, a `mas batch` process with a key, is SIGKILLed while it
    waits for its second batch, then started again."""
    topics = tmp_path / "topics.txt"
    topics.write_text("\n".join(TOPICS[:2]) + "\n", encoding="utf-8")
    with serving(tmp_path / "serve", "--latency", "0.8") as server:
        env = {k: v for k, v in os.environ.items() if k not in ("MAS_OFFLINE", "MAS_NO_LIVE")}
        env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=FAKE_KEY, PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "mas.cli", "batch", str(topics), "--db", str(tmp_path / "m.db"),
                   "--name", "killed"]
        runner = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in runner.stdout:
            seen.append(line)
            if sum("request(s) sent" in x for x in seen) == 2:
                runner.send_signal(signal.SIGKILL)  # the second batch is sent and not read
                break
        runner.wait(timeout=30)
        assert runner.returncode == -signal.SIGKILL, "".join(seen)
        time.sleep(1)  # the killed holder's lease: a dead process of this host frees it at once
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "2 runs: 2 approved; 6 requests in 3 batches" in again.stdout, again.stdout
        sdk = anthropic.Anthropic(base_url=server.url, api_key=FAKE_KEY, max_retries=0)
        assert requests_sent(sdk) == 10  # a clean job's 10 requests: the killed runner's second batch was not sent again
        assert FAKE_KEY not in server.logs()
