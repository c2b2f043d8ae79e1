"""Optional parts: import them, or say in one line which extra installs them.

`pip install mas` gives the module alone (`import mas`, `mas run`); the course's JupyterLab and
widgets are the `lab` extra, Redis and Celery the `redis` extra, the server of `mas serve` (Starlette, uvicorn) the
`serve` extra, matplotlib (`EvalResults.plot`, `mas eval --plot`) the `plot` extra. A part that needs one imports it here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mas.errors import MissingExtra

EXTRA_OF = {"ipywidgets": "lab", "IPython": "lab", "redis": "redis", "celery": "redis", "starlette": "serve",
            "uvicorn": "serve", "matplotlib": "plot"}
MAKE_TARGET = {"lab": "make lab", "redis": "make test"}


def install_hint(extra: str) -> str:
    """The command that installs an extra.

    >>> install_hint("lab")
    "pip install -c constraints.txt -e '.[lab]' (or make lab), or pip install 'mas[lab]'"
    """
    return (f"pip install -c constraints.txt -e '.[{extra}]' (or {MAKE_TARGET.get(extra, 'make test')}), "
            f"or pip install 'mas[{extra}]'")


def require(package: str, needed_by: str) -> ModuleType:
    """Import `package`, or raise `MissingExtra` naming the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as err:
        if err.name != package and not (err.name or "").startswith(package + "."):
            raise  # a broken install of something else: not ours to reword
        extra = EXTRA_OF.get(package, package)
        raise MissingExtra(package, needed_by, extra, install_hint(extra)) from None
