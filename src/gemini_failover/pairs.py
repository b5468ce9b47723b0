"""Chain entries as (endpoint, model) pairs, spelled as one string key.

A chain entry is ``endpoint:model`` (``vertex:gemini-2.5-pro``) or a bare model name,
which means the default endpoint. The *canonical* key of a pair is the bare model on
the default endpoint (so the keys, the metrics and the Redis state of a configuration
without endpoints stay what they were) and ``endpoint:model`` elsewhere. Everything
keyed by model name (breakers, cool-downs, quota state, profiles, Redis keys,
provenance) is therefore per pair without knowing about endpoints.

Pure functions, no configuration: the default endpoint is passed in.
"""

from __future__ import annotations

import re
from typing import Final

#: The endpoint a configuration without ``endpoints`` has: GEMINI_API_KEY, base_url,
#: api_version (the settings of every release before endpoints).
IMPLICIT_ENDPOINT: Final = "gemini"

#: An endpoint name: lower case (environment variable names lose their case), a
#: letter first, then letters, digits, ``_`` and ``-``.
ENDPOINT_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,39}")

SEPARATOR: Final = ":"


#: A model name goes into request URLs as it is: visible ASCII but ?, # and %.
_URL_SAFE_MODEL: Final = re.compile(r"(?:(?![?#%])[!-~])+")


def url_safe(model: str) -> bool:
    """Whether ``model`` names the same URL path on every client: visible ASCII but
    ?, # and %, and no "." or ".." segment (httpx2 would resolve one, the direct path
    would not)."""
    return bool(_URL_SAFE_MODEL.fullmatch(model)) and not {".", ".."} & set(model.split("/"))


def split(key: str) -> tuple[str | None, str]:
    """(endpoint, model) of a chain entry; endpoint None: the default endpoint. A
    prefix that is not an endpoint name is part of the model name."""
    head, sep, tail = key.partition(SEPARATOR)
    if sep and tail and ENDPOINT_NAME.fullmatch(head):
        return head, tail
    return None, key


def model_of(key: str) -> str:
    """The model name the endpoint is called with (``gemini-2.5-pro``)."""
    return split(key)[1]


def endpoint_of(key: str, default: str) -> str:
    """The endpoint a key is served by."""
    endpoint, _ = split(key)
    return default if endpoint is None else endpoint


def canonical(key: str, default: str) -> str:
    """The one spelling of a pair: bare on the default endpoint, ``endpoint:model``
    elsewhere."""
    endpoint, model = split(key.strip())
    if endpoint is None or endpoint == default:
        return model
    return f"{endpoint}{SEPARATOR}{model}"


def join(endpoint: str, model: str, default: str) -> str:
    """The canonical key of (endpoint, model)."""
    return model if endpoint == default else f"{endpoint}{SEPARATOR}{model}"


__all__ = [
    "ENDPOINT_NAME",
    "IMPLICIT_ENDPOINT",
    "SEPARATOR",
    "canonical",
    "endpoint_of",
    "join",
    "model_of",
    "split",
    "url_safe",
]
