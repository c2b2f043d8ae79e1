"""Redaction: no credential leaves `mas` in a URL, a header or a text it prints, logs, raises, stores or records.

    >>> redact_url("https://user:pass-word@gateway.example/v1?api_key=abc#frag")
    'https://***@gateway.example/v1?***'
    >>> print(redact_text("Error code: 401 - {'x-api-key': 'fake-key-0000', 'authorization': 'Bearer tok3n'}"))
    Error code: 401 - {'x-api-key': '***', 'authorization': '***'}

A credential is found by where it sits, by its name, by its shape, or by its value:
- in a URL: the user-info (`user:password@`) and the whole query are hidden, the fragment dropped;
- after a credential's name: the value of `x-api-key: ...`, `"authorization": "Bearer ..."`, `api_key=...`,
  `password=...`, in header, JSON, Python-dict and query form alike (an API error body that echoes the
  request's headers is text of that kind);
- by its shape: `Bearer <token>`, and anything shaped like an Anthropic key (`sk-ant-...`);
- by its value: the credentials this process was given (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, and the
  passwords and secret parameters of REDIS_URL, ANTHROPIC_BASE_URL, MAS_* and other *_URL variables), wherever
  they appear as a whole word.

Simplified on purpose: a secret with none of these (a bare token in prose that this process was not given) is
not found. The rules hide more than they must rather than less. Every pattern is bounded, so redaction takes
time linear in the text, however it is built.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "***"
UNREADABLE = "(a URL that cannot be read)"
API_CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")  # what travels with every request to the API
MIN_SECRET = 4  # a shorter value is not looked for as a word (it would hide ordinary words, not a secret)

# a credential's name: x-api-key, api_key, authorization, auth_token, password, client-secret, cookie, ...
# (a whole word, maybe after a few prefixes: max_tokens is no credential's name, `x-goog-api-key` is)
_NAME = (r"(?<![\w-])(?:[A-Za-z0-9]{1,20}[-_]){0,3}"
         r"(?:api[-_]?key|key|token|secret|password|passwd|pwd|authorization|auth|cookie|signature|credentials?)"
         r"(?![\w-])")
_FIELD = re.compile(rf"(?P<name>{_NAME})(?P<sep>[\s\"'\\]{{0,6}}[:=][\s\"'\\]{{0,6}})"
                    r"(?P<value>(?:(?:bearer|basic|token)\s{1,4})?[^\s\"'\\,;&<>()\[\]{}]+)", re.IGNORECASE)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://")  # bounded: finding one in a text is never quadratic
_URL = re.compile(_SCHEME.pattern + r"[^\s\"'<>`]*")  # in a text, a URL ends at a space or a quote
_BEARER = re.compile(r"(?i:\bbearer)\s{1,4}[A-Za-z0-9._~+/=-]*\d[A-Za-z0-9._~+/=-]*")
_ANTHROPIC_KEY = re.compile(r"sk-ant-[A-Za-z0-9_-]+")


def redact_url(url: str) -> str:
    """The URL without its credentials: user-info and query hidden, fragment dropped; a URL that cannot be
    parsed is not shown at all (it may hold a password).

    >>> redact_url("redis://:s3cret@cache.example:6379/0"), redact_url("redis://localhost:6379/0")
    ('redis://***@cache.example:6379/0', 'redis://localhost:6379/0')
    >>> redact_url("https://user:tok@gateway.example/anthropic?key=abc#x"), redact_url("http://u:p@[::1/")
    ('https://***@gateway.example/anthropic?***', '(a URL that cannot be read)')
    >>> redact_url("redis://:pa/ss@cache.example/0"), redact_url("u:pw@cache.example:6379")
    ('redis://***@cache.example/0', '***@cache.example:6379')
    >>> redact_url("https://u:p?w@gateway.example/"), redact_url("https://gateway.example/?key=a@b")
    ('https://***', 'https://***')
    """
    scheme = _SCHEME.match(url)
    head, rest = (scheme[0], url[scheme.end():]) if scheme else ("", url)  # `u:pw@host`: the user-info starts it
    # subtle: a password may hold an unescaped / ? # or @, which parsers then read as a path, a query, a
    # fragment or the host. So the user-info is taken to run to the LAST @, the query from the FIRST ? or #,
    # and only what lies between the two is shown: less than a parser would, never more.
    at = rest.rfind("@")
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    if at > cut:  # the two overlap: no part of it is surely neither
        return f"{head}{HIDDEN}"
    shown = (f"{HIDDEN}@" if at >= 0 else "") + rest[at + 1:cut]
    query = rest[cut:].partition("#")[0]  # "?..." or "" (a fragment alone is dropped)
    try:
        parts = urlsplit(head + shown)
    except ValueError:  # a malformed URL: nothing of it is shown
        return UNREADABLE
    if at < 0 and cut == len(rest):
        return url  # nothing to hide: the URL as it was written
    return urlunsplit(parts) + (f"?{HIDDEN}" if len(query) > 1 else "")


def redact_text(text: str) -> str:
    """`text` with every credential found by the rules of the module docstring replaced by ***.

    >>> redact_text("GET /v1/messages?beta=true&api_key=abc123 via http://u:pw@proxy:8080/")
    'GET /v1/messages?beta=true&api_key=*** via http://***@proxy:8080/'
    >>> key = "sk-" + "ant-api03-Zx9_q"  # built, so that no scanner takes this file for one holding a key
    >>> redact_text(f"max_tokens: 1024, key {key}")
    'max_tokens: 1024, key sk-ant-***'
    """
    text = _URL.sub(lambda m: redact_url(m[0]), text)
    text = _FIELD.sub(lambda m: m["name"] + m["sep"] + HIDDEN, text)
    text = _BEARER.sub(f"Bearer {HIDDEN}", text)
    text = _ANTHROPIC_KEY.sub(f"sk-ant-{HIDDEN}", text)
    return redact_known(text)


def redact_known(text: str, *, api_only: bool = False) -> str:
    """`text` with the credentials this process was given replaced by ***, wherever one stands as a whole
    word; `api_only`: only API_CREDENTIALS, the ones an API (or a recording of it) can ever see.

    >>> os.environ["ANTHROPIC_AUTH_TOKEN"] = "gw-tok-42"
    >>> redact_known("token gw-tok-42 expired; gw-tok-420 is another")
    'token *** expired; gw-tok-420 is another'
    >>> del os.environ["ANTHROPIC_AUTH_TOKEN"]
    """
    pattern = _known_pattern(_given_credentials(api_only))
    return pattern.sub(HIDDEN, text) if pattern is not None else text


def _given_credentials(api_only: bool) -> tuple[str, ...]:
    """The credentials in the environment now: whole values of API_CREDENTIALS, and the passwords and secret
    parameters of the URL variables. Read from os.environ, not mas.settings: a formatter of errors must not
    fail on a setting's error (mas.settings loads .env into the environment, so its values are here too)."""
    found = [os.environ.get(name, "").strip() for name in API_CREDENTIALS]
    if not api_only:
        for name, value in os.environ.items():
            # a URL: by its name (REDIS_URL, even written without a scheme), or by its scheme (MAS_*, ANTHROPIC_*)
            if name.endswith("_URL") or (name.startswith(("MAS_", "ANTHROPIC_")) and "://" in value):
                found += _url_secrets(value.strip())
    return tuple(sorted({s for s in found if len(s) >= MIN_SECRET}, key=len, reverse=True))


def _url_secrets(url: str) -> list[str]:
    """A URL's password (or user-info without one: a token), the pieces a parser may quote back from it, and
    the values of its credential-named parameters.

    >>> _url_secrets("redis://default:hunter2/x@host:6379/0?password=swordfish&db=1")
    ['hunter2/x', 'hunter2', 'x', 'swordfish']
    """
    scheme = _SCHEME.match(url)
    rest = url[scheme.end():] if scheme else url
    secrets = []
    if "@" in rest:
        user, colon, password = rest.rpartition("@")[0].partition(":")
        secret = password if colon else user
        secrets += [secret, *re.split(r"[/?#]", secret)] if re.search(r"[/?#]", secret) else [secret]
    secrets += [m["value"] for m in _FIELD.finditer(rest.rpartition("@")[2].partition("?")[2])]
    return secrets


@lru_cache(maxsize=8)
def _known_pattern(secrets: tuple[str, ...]) -> re.Pattern | None:
    """One pattern for every secret (longest first), as written and as it appears inside a JSON string."""
    forms = dict.fromkeys(form for s in secrets for form in (s, json.dumps(s, ensure_ascii=False)[1:-1]))
    if not forms:
        return None
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, forms)) + r")(?![A-Za-z0-9])")
