"""Which chain a model name in the URL selects, and what the gateway lists as models.

A configured alias (``auto`` by default) selects a chain from its start: the generation
chain for generateContent / streamGenerateContent / countTokens, the embedding chain for
embedContent / batchEmbedContents. A chain model's own name selects its chain starting
at that model; a bare model name selects the first chain entry serving that model,
on whichever endpoint (``gemini-2.5-pro`` for ``vertex:gemini-2.5-pro``). Any other
name is Gemini's 404 NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gemini_failover import pairs
from gemini_failover.emulator.wire import ACTION_METHODS, Action, model_resource

__all__ = ["EMBED_METHODS", "GENERATE_METHODS", "ChainRouter", "Target"]

GENERATE_METHODS = ("generateContent", "streamGenerateContent", "countTokens")
EMBED_METHODS = ("embedContent", "batchEmbedContents")

Kind = Literal["generate", "embed"]


@dataclass(frozen=True, slots=True)
class Target:
    """A chain (``kind``) and where in it a request starts (``start``: an index)."""

    kind: Kind
    start: int
    chain: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.chain[self.start]


class ChainRouter:
    """Model names -> targets, for one gateway's chains and aliases."""

    def __init__(
        self,
        models: Sequence[str],
        embedding_models: Sequence[str],
        aliases: Sequence[str],
        default_endpoint: str = pairs.IMPLICIT_ENDPOINT,
    ) -> None:
        self.default_endpoint = default_endpoint
        self.models = tuple(models)
        self.embedding_models = tuple(embedding_models)
        self.aliases = tuple(aliases)
        clash = set(self.aliases) & (set(self.models) | set(self.embedding_models))
        if clash:
            raise ValueError(
                f"gateway_aliases (GEMINI_FAILOVER_GATEWAY_ALIASES): {sorted(clash)} "
                "also name chain models; pick alias names that are not model names"
            )

    def target(self, model: str, action: Action) -> Target | None:
        """The target of ``action`` on ``model``; None: Gemini would answer 404."""
        kind: Kind = "embed" if action == "embed" else "generate"
        chain = self.embedding_models if kind == "embed" else self.models
        if model in self.aliases:
            return Target(kind, 0, chain) if chain else None
        model = pairs.canonical(model, self.default_endpoint)  # "studio:x" on studio: "x"
        if model in self.aliases:
            return Target(kind, 0, chain) if chain else None
        if model in chain:
            return Target(kind, chain.index(model), chain)
        # -- endpoints: a bare model name is the first entry serving that model --
        bare = next((i for i, key in enumerate(chain) if pairs.model_of(key) == model), None)
        return Target(kind, bare, chain) if bare is not None else None

    def known(self, model: str) -> bool:
        every = (*self.models, *self.embedding_models)
        if model not in self.aliases:
            model = pairs.canonical(model, self.default_endpoint)
        return model in self.aliases or any(model in (k, pairs.model_of(k)) for k in every)

    def method_of(self, action: Action) -> str:
        return ACTION_METHODS.get(action, "generateContent")

    # -- models.get / models.list -------------------------------------------------------

    def resources(self, status: Sequence[dict[str, Any]], version: str) -> list[dict[str, Any]]:
        """Every model the gateway routes: the aliases first, then the chain models
        (limits from the manager's model status)."""
        limits = {s["model"]: s["profile"] for s in status}
        out = [self._alias(alias, limits, version) for alias in self.aliases]
        for name in self.models:
            out.append(self._model(name, limits, version, GENERATE_METHODS, "generation"))
        for name in self.embedding_models:
            out.append(self._model(name, limits, version, EMBED_METHODS, "embedding"))
        return out

    def resource(
        self, model: str, status: Sequence[dict[str, Any]], version: str
    ) -> dict[str, Any] | None:
        for item in self.resources(status, version):
            if item["name"] == f"models/{model}":
                return item
        return None

    def _alias(self, alias: str, limits: dict[str, Any], version: str) -> dict[str, Any]:
        first = limits.get(self.models[0], {})
        methods = GENERATE_METHODS + (EMBED_METHODS if self.embedding_models else ())
        return model_resource(
            alias,
            version=version,
            display_name=f"Failover: {' -> '.join(self.models)}",
            description=(
                "Gateway alias: generation goes through the chain "
                f"{', '.join(self.models)}; embeddings through "
                f"{', '.join(self.embedding_models) or 'no model'}."
            ),
            input_token_limit=first.get("input_token_limit") or 0,
            output_token_limit=first.get("output_token_limit") or 0,
            methods=methods,
        )

    def _model(
        self,
        name: str,
        limits: dict[str, Any],
        version: str,
        methods: Sequence[str],
        role: str,
    ) -> dict[str, Any]:
        profile = limits.get(name, {})
        chain = self.models if role == "generation" else self.embedding_models
        after = chain[chain.index(name) + 1 :]
        return model_resource(
            name,
            version=version,
            display_name=name,
            description=(
                f"{role.capitalize()} chain model; fails over to "
                f"{', '.join(after) if after else 'no model (last in the chain)'}."
            ),
            input_token_limit=profile.get("input_token_limit") or 0,
            output_token_limit=profile.get("output_token_limit") or 0,
            methods=methods,
        )
