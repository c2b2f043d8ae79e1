"""The environment every test and every notebook kernel runs in: offline, no key, no `.env`, no switches.

Used by conftest.py (kernels inherit the pytest process's environment) and by
tools/refresh_notebooks.py, so committed outputs and test runs see exactly the same settings
whatever a developer has exported or written in `.env`.
"""

from __future__ import annotations

import os

ISOLATED = {
    "MAS_OFFLINE": "1",
    "MAS_NO_LIVE": "1",  # the kill switch: building a live client through mas raises
    "MAS_NO_DOTENV": "1",  # a developer's .env must not change what runs
    "ANTHROPIC_API_KEY": "",
    "ANTHROPIC_AUTH_TOKEN": "",
    # a client built by hand (anthropic.Anthropic()) in a kernel reaches nothing: port 9 is "discard"
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
}
CLEARED = ("MAS_MODEL", "MAS_TIMEOUT", "MAS_MAX_RETRIES", "MAS_FAULTS", "MAS_RECORD", "MAS_REPLAY",
           "MAS_REPLAY_FALLBACK", "MAS_INTERACTIVE", "MAS_PROGRESS", "MAS_DB", "ANTHROPIC_PROFILE",
           "ANTHROPIC_CUSTOM_HEADERS")


def isolate(environ: os._Environ | dict = os.environ) -> None:
    for name in CLEARED:
        environ.pop(name, None)
    environ.update(ISOLATED)
