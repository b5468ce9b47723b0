"""Model choice: a request may start at a named model of the chain (its name or a
short alias such as ``pro`` or ``flash``) and fail over only to the models after it,
or not at all.

Aliases come from ``Settings.model_aliases``; ``pro`` and ``flash`` (and ``lite``)
also default to the first chain model whose name has that word (``gemini-2.5-flash``
for ``flash``, but not ``gemini-2.5-flash-lite`` when a plain flash model is in the
chain: a model whose name has *only* the alias as its last word comes first).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gemini_failover import pairs
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.results import RequestFailed

#: Aliases that default to a chain model by name when not configured.
DEFAULT_ALIASES = ("pro", "flash", "lite")


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """Where a request starts in the chain (an index) and whether it may fail over."""

    start: int = 0
    failover: bool = True

    def stop(self, length: int) -> int:
        """One past the last chain index the request may use."""
        return length if self.failover else min(length, self.start + 1)


ANY = ModelChoice()


def aliases(names: Sequence[str], configured: Mapping[str, str]) -> dict[str, str]:
    """Every alias that names a chain model: the configured ones, then the defaults."""
    out: dict[str, str] = {}
    models = [pairs.model_of(n).removeprefix("models/").lower() for n in names]
    for alias in DEFAULT_ALIASES:
        words = [set(re.split(r"[-_.]", m)) for m in models]
        exact = [n for n, m in zip(names, models, strict=True) if m.endswith(alias)]
        loose = [n for n, w in zip(names, words, strict=True) if alias in w]
        found = exact or loose
        if found:
            out[alias] = found[0]
    for alias, model in configured.items():
        target = find(names, model)
        if target is not None:
            out[alias.lower()] = target
    return out


def find(names: Sequence[str], wanted: str) -> str | None:
    """The chain entry ``wanted`` names: itself, or for a bare model name the first
    entry serving that model (on whichever endpoint)."""
    if wanted in names:
        return wanted
    return next((n for n in names if pairs.model_of(n) == wanted), None)


def resolve(
    names: Sequence[str],
    configured: Mapping[str, str],
    model: str | None,
    failover: bool = True,
) -> ModelChoice:
    """The choice for ``model`` (None: the whole chain, from the primary). An unknown
    name is a bad_request whose message lists the choices."""
    if model is None:
        return ModelChoice(0, failover)
    wanted = model.strip()
    found = find(names, wanted)
    if found is not None:
        return ModelChoice(list(names).index(found), failover)
    short = aliases(names, configured)
    target = short.get(wanted.lower())
    if target is not None:
        return ModelChoice(list(names).index(target), failover)
    choices = ", ".join([*names, *(f"{a} (= {m})" for a, m in short.items())])
    raise RequestFailed(Category.BAD_REQUEST, f"unknown model {wanted!r}; choose one of: {choices}")
