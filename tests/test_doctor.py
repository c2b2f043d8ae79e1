"""`mas doctor`, the offline Models API it asks, and the one-line hints for missing extras."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest
from gateway import gateway

from mas import doctor
from mas.client import make_client
from mas.errors import MissingExtra
from mas.extras import require
from mas.offline import OfflineTransport
from mas.offline.catalog import listed_models
from mas.settings import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "sk-ant-" + "Qz7Xv9Kj" * 5  # built here, so it cannot look like a committed key


def statuses(checks):
    return {c.what: c.status for c in checks}


def test_offline_screen_says_offline_and_passes_the_model(capsys):
    code = doctor.main(ROOT)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "mas doctor" and lines[-1] == "nothing failed" and code == 0
    assert all(line.split()[0] in ("ok", "warn", "fail") for line in lines[1:-1])
    checks = statuses(doctor.run_checks(ROOT))
    assert checks["mode"] == checks["model"] == checks["key"] == checks["python"] == "ok"
    assert f"{DEFAULT_MODEL} (Claude Opus 4.6), listed by anthropic" in out
    assert "newest" in out and listed_models()[0] in out


def test_an_unknown_model_fails_with_the_fix(monkeypatch, capsys):
    monkeypatch.setenv("MAS_MODEL", "claude-made-up-9")
    assert doctor.main(ROOT) == 1
    out = capsys.readouterr().out
    assert "fail  model     claude-made-up-9 is not in anthropic" in out
    assert f"set MAS_MODEL to one it lists, e.g. {listed_models()[0]}" in out and "1 failed" in out


def test_the_live_branch_asks_the_models_api():
    client = make_client(transport=OfflineTransport())  # the Models API, answered as the API does
    good = doctor.check_model(client, DEFAULT_MODEL, offline=False)
    assert [c.status for c in good] == ["ok", "ok"] and "served by the API, active" in good[0].detail
    gone = doctor.check_model(client, "claude-2-1", offline=False)
    assert gone[0].status == "fail" and "claude-2-1 is not served by the API" in gone[0].detail


def test_versions_are_compared_with_the_lock(tmp_path):
    assert doctor.check_packages(ROOT).status == "ok"
    (tmp_path / "constraints.txt").write_text("anthropic==0.0.1\npydantic==2.14.4 ; sys_platform == 'nope'\n")
    check = doctor.check_packages(tmp_path)
    assert check.status == "warn" and "anthropic" in check.detail and "(locked 0.0.1)" in check.detail
    assert "pydantic" not in check.detail  # its pin is for another platform
    assert doctor.check_packages(tmp_path / "elsewhere").status == "warn"


def test_lab_and_redis_lines_name_the_extra(monkeypatch):
    def missing(name):
        raise doctor.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(doctor.metadata, "version", missing)
    lab = doctor.check_lab()
    assert lab.status == "warn" and "jupyterlab and ipywidgets" in lab.detail and "'.[lab]'" in lab.fix
    monkeypatch.setitem(sys.modules, "redis", None)
    redis = doctor.check_redis()
    assert redis.status == "warn" and "'.[redis]'" in redis.fix


def test_redis_reachable_or_the_start_command(monkeypatch, redis_url):
    assert doctor.check_redis().status == "ok"
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    check = doctor.check_redis()
    assert check.status == "warn" and "redis-server --port 6379" in check.fix
    assert "hunter2" not in check.line() and "***@127.0.0.1" in check.detail


def test_with_a_key_and_a_base_url_no_part_of_the_key_is_shown(tmp_path):
    with socket.socket() as s:  # bound, never listening: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("MAS_NO_LIVE", "MAS_OFFLINE")}
        env.update(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=f"http://gw:{FAKE_KEY}@127.0.0.1:{port}")
        run = subprocess.run([sys.executable, "-m", "mas.cli", "doctor"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    shown = run.stdout + run.stderr
    assert run.returncode == 1 and "mode      live" in shown and "key       ANTHROPIC_API_KEY set" in shown
    assert f"cannot reach http://***@127.0.0.1:{port}" in shown
    secret = FAKE_KEY.removeprefix("sk-ant-")
    assert not any(secret[i:i + 6] in shown for i in range(len(secret) - 5)), shown


def test_a_bad_base_url_fails(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "localhost:8000")
    assert doctor.check_base_url().status == "fail"


def test_the_offline_models_api_pages_and_404s():
    client = make_client(transport=OfflineTransport())
    first = client.models.list(limit=3)
    assert [m.id for m in first.data] == list(listed_models()[:3]) and first.has_more
    assert [m.id for m in client.models.list(limit=7)] == list(listed_models())  # the SDK follows the pages
    assert client.models.retrieve(listed_models()[-1]).type == "model"
    with pytest.raises(anthropic.NotFoundError, match="model: claude-2-1"):
        client.models.retrieve("claude-2-1")
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        client.models.list(limit=0)


def test_missing_extras_say_which_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.delitem(sys.modules, "mas.widgets", raising=False)
    with pytest.raises(MissingExtra, match=r"mas.widgets needs ipywidgets.*'.\[lab\]'"):
        importlib.import_module("mas.widgets")
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingExtra, match=r"RedisMemory needs redis.*'mas\[redis\]'"):
        from mas.scaling import RedisMemory

        RedisMemory("redis://127.0.0.1:1/0")
    assert require("json", "a test").dumps(1) == "1"


def test_mas_run_needs_no_jupyter_package(tmp_path):
    """The module alone: `mas run` imports nothing of the course's extras."""
    code = ("import sys; from mas.cli import main; rc = main(['run', 'How vector databases enable semantic search', "
            f"'--db', {str(tmp_path / 'm.db')!r}]); "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('IPython', 'ipykernel', 'ipywidgets', 'jupyterlab', 'jupyter_server', 'redis', 'nbformat')); "
            "print('LOADED', loaded); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "LOADED []" in run.stdout and "approved" in run.stdout


def test_malformed_urls_are_lines_not_tracebacks(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://user:hunter2@[::1")
    base = doctor.check_base_url()
    assert base.status == "fail" and "hunter2" not in base.line()
    monkeypatch.setenv("REDIS_URL", "notredis://x")
    assert doctor.check_redis().status == "warn"


def test_a_gateway_without_the_models_api_is_a_warning_naming_the_endpoint(loopback, monkeypatch):
    with gateway(missing=("/v1/models",)) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url + "/")
        checks = doctor.run_checks(ROOT)
    model = next(c for c in checks if c.what == "model")
    assert model.status == "warn" and model.detail == (
        f"GET /v1/models is not served by ANTHROPIC_BASE_URL={server.url} (404): {DEFAULT_MODEL} was not checked")
    assert statuses(checks)["mode"] == "ok" and "redis" in statuses(checks)  # the checks after it ran too
    assert ("GET", "/v1/models", b"") in server.requests
