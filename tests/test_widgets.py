"""The playground's logic, headless: build the widgets, set values, fire the callbacks, read what they show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mas.client import make_client
from mas.offline import ScriptedTransport
from mas.prompts import SYSTEM_PROMPTS

widgets = pytest.importorskip("mas.widgets")


def click(button_description: str, root) -> None:
    """Press the button with this label, as a user would (fires its on_click handlers)."""
    stack = [root]
    while stack:
        w = stack.pop()
        if getattr(w, "description", None) == button_description and hasattr(w, "click"):
            w.click()
            return
        stack.extend(getattr(w, "children", ()))
    raise AssertionError(f"no button {button_description!r}")


@pytest.fixture
def playground():
    return widgets.Playground(show_time=False)


def test_run_agent_shows_the_reply_tokens_and_cost(playground):
    click("Run agent", playground.widget)
    assert "## Research: How vector databases enable semantic search" in playground.reply.value
    stats = playground.stats.value
    assert stats.startswith("claude-opus-4-6 · ") and "out tokens" in stats and "$" in stats and " s ·" not in stats


def test_a_model_without_a_price_shows_cost_unknown(playground):
    playground.model.options = (*playground.model.options, "claude-made-up-1")
    playground.model.value = "claude-made-up-1"
    playground.run_agent()
    assert playground.stats.value.endswith("cost unknown")


def test_editing_a_prompt_changes_what_is_sent():
    transport = ScriptedTransport(["a reply"])
    playground = widgets.Playground(make_client(transport=transport), show_time=False)
    playground.role.value = "writer"
    playground.system.value = "You are a terse writer."
    playground.max_tokens.value = 77
    playground.run_agent()
    sent = transport.requests[0]
    assert (sent["system"], sent["max_tokens"]) == ("You are a terse writer.", 77)
    assert playground.prompts["writer"] == "You are a terse writer."
    assert SYSTEM_PROMPTS["writer"] != "You are a terse writer."  # the course's prompts are untouched


def test_compare_runs_both_variants_on_the_same_input():
    transport = ScriptedTransport(["reply A", "reply B"])
    playground = widgets.Playground(make_client(transport=transport), show_time=False)
    playground.variant_a.value, playground.variant_b.value = "You are a researcher. A.", "You are a researcher. B."
    click("Compare A and B", playground.widget)
    assert [r["system"] for r in transport.requests] == ["You are a researcher. A.", "You are a researcher. B."]
    assert transport.requests[0]["messages"] == transport.requests[1]["messages"]
    assert "reply A" in playground.reply_a.value and "reply B" in playground.reply_b.value
    assert "tokens" in playground.reply_a.value


def test_run_pipeline_reports_status_and_usage(playground):
    click("Run pipeline", playground.widget)
    assert playground.status.value.startswith("approved: approved after")  # plain text: it is printed too
    assert playground.stats.value.startswith("5 calls · ")


def test_reset_save_and_load(playground, tmp_path):
    playground.system.value = "You are a researcher who only answers in haiku."
    path = playground.save(str(tmp_path / "prompts.json"))
    assert json.loads(path.read_text())["prompts"]["researcher"].endswith("haiku.")
    click("Reset prompts", playground.widget)
    assert playground.system.value == SYSTEM_PROMPTS["researcher"]
    playground.load(str(path))
    assert playground.system.value.endswith("haiku.") and playground.status.value.startswith("Loaded")


def test_loading_a_bad_file_says_why_and_changes_nothing(playground, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"prompts": "not a dict"}')
    playground.load(str(bad))
    assert playground.status.value.startswith("Could not load") and playground.prompts == SYSTEM_PROMPTS
    assert "'prompts' must map role names" in playground.status.value  # text: a quote is no &#x27; when printed
    playground.load(str(tmp_path / "missing.json"))
    assert playground.status.value.startswith("Could not load")


def test_an_api_error_is_shown_not_raised():
    from mas.offline import error

    playground = widgets.Playground(make_client(transport=ScriptedTransport([error(400, "bad thing")])))
    playground.run_agent()
    assert "[error] BadRequestError" in playground.reply.value


def test_import_mas_does_not_load_ipywidgets():
    code = "import sys, mas; print('ipywidgets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_trace_viewer_shows_calls_and_the_picked_calls_prompt_and_reply(tmp_path):
    from mas.memory import SQLiteMemory
    from mas.orchestrator import Orchestrator
    from mas.tracing import Tracer

    with Tracer() as tracer, SQLiteMemory(tmp_path / "m.db") as memory:
        Orchestrator(memory, progress=None).run("How vector databases enable semantic search", run_id="t")
    viewer = widgets.TraceViewer(tracer, times=False)
    assert viewer.calls.options[0][0].startswith("1. Researcher")
    assert len(viewer.calls.options) == 5 and "Validator" in viewer.table.value
    assert "&lt;topic&gt;How vector databases" in viewer.detail.value  # the first call's prompt
    viewer.calls.value = 3  # as a user clicking the third call
    assert "Validator" in viewer.detail.value and "approved" in viewer.detail.value
    assert "seconds" not in viewer.table.value and viewer.timeline.value == ""
    assert "<svg" in widgets.TraceViewer(tracer).timeline.value
