"""The offline model's Models API: `GET /v1/models` and `GET /v1/models/{id}`, as the API answers them.

It serves every model id the installed SDK lists (its `ModelParam` literal), newest first as the API orders
them, each `active`. Release dates are known only for dated ids (`claude-haiku-4-5-20251001`); the others carry
the epoch, as the API allows for an unknown date. So `mas doctor` and `client.models.list()` work offline too.
"""

from __future__ import annotations

import re
import typing
from functools import cache
from urllib.parse import parse_qs

from anthropic.types import ModelParam

DEFAULT_LIMIT, MAX_LIMIT = 20, 1000  # the API's page sizes
EPOCH = "1970-01-01T00:00:00Z"


@cache
def listed_models() -> tuple[str, ...]:
    """The model ids this version of the SDK lists (its `ModelParam` literal), newest first."""
    return typing.get_args(typing.get_args(ModelParam)[0])


def display_name(model_id: str) -> str:
    """A human-readable name, as the API gives one.

    >>> display_name("claude-haiku-4-5-20251001")
    'Claude Haiku 4.5'
    >>> display_name("claude-mythos-preview")
    'Claude Mythos Preview'
    """
    words = re.sub(r"-\d{8}$", "", model_id).split("-")
    names = [w.capitalize() for w in words if not w.isdigit()]
    version = ".".join(w for w in words if w.isdigit())
    return " ".join(names + ([version] if version else []))


@cache
def model_info(model_id: str) -> dict:
    dated = re.search(r"-(\d{4})(\d{2})(\d{2})$", model_id)
    created = f"{dated[1]}-{dated[2]}-{dated[3]}T00:00:00Z" if dated else EPOCH
    return {"type": "model", "id": model_id, "display_name": display_name(model_id), "created_at": created,
            "lifecycle": "active", "deprecated_at": None, "retires_at": None}


def retrieve(model_id: str) -> dict | None:
    """`GET /v1/models/{model_id}`: the model, or None (the API's 404) for an id not served."""
    return model_info(model_id) if model_id in listed_models() else None


def page(query: str) -> dict | str:
    """`GET /v1/models?limit=&after_id=&before_id=`: one page of the list, or the 400's message."""
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return f"limit: must be an integer, got {params['limit']!r}"
    if not 1 <= limit <= MAX_LIMIT:
        return f"limit: must be between 1 and {MAX_LIMIT}, got {limit}"
    ids = list(listed_models())
    start, stop = 0, len(ids)
    for key in ("after_id", "before_id"):
        if key in params and params[key] not in ids:
            return f"{key}: no model {params[key]!r}"
    if "after_id" in params:
        start = ids.index(params["after_id"]) + 1
    if "before_id" in params:
        stop = ids.index(params["before_id"])
        start = max(start, stop - limit)
    chosen = ids[start:stop][:limit]
    return {"data": [model_info(m) for m in chosen], "has_more": start + len(chosen) < stop,
            "first_id": chosen[0] if chosen else None, "last_id": chosen[-1] if chosen else None}
