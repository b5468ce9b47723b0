"""The generation tools' feature arguments: Google Search grounding, thinking, model
choice and conversations. Their parameter types (flat, bounded, described for the
calling model), and :class:`Options`, what the handlers hand to calls.py.

Kept in a module of their own so the tools that take them (gemini_generate,
gemini_chat, gemini_generate_json) share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from gemini_failover.kinds import ThinkingLevel

if TYPE_CHECKING:
    from gemini_failover.protocol import Thinking

#: Largest thinking budget any Gemini model takes (2.5 Pro: 32,768).
MAX_THINKING_BUDGET = 32_768

GoogleSearch = Annotated[
    bool,
    Field(
        description="Ground the answer in Google Search (current facts, citable sources); the "
        "answer ends with its sources.",
    ),
]
ThinkingArg = Annotated[
    Literal["off", "low", "medium", "high"] | None,
    Field(
        description="Thinking effort: high for hard reasoning, off/low for quick answers.",
    ),
]
ThinkingBudget = Annotated[
    int | None,
    Field(
        ge=-1,
        le=MAX_THINKING_BUDGET,
        description="Exact thinking budget in tokens (0 off, -1 dynamic); overrides thinking.",
    ),
]
IncludeThoughts = Annotated[
    bool,
    Field(
        description="Return the thought summary (structured result only).",
    ),
]
ModelArg = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description='"pro" (hardest questions), "flash" (fast, simple) or a chain model name; '
        "fails over only to later models.",
    ),
]
FailoverArg = Annotated[
    bool,
    Field(
        description="false: only that model answers, or an error.",
    ),
]
ConversationId = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="A conversation_id from an earlier result: continue that conversation.",
    ),
]


@dataclass(frozen=True, slots=True)
class Options:
    """The feature arguments of one generation tool call."""

    google_search: bool = False
    thinking: ThinkingLevel | None = None
    thinking_budget: int | None = None
    include_thoughts: bool = False
    model: str | None = None
    failover: bool = True
    conversation_id: str | None = None

    def thinking_config(self) -> Thinking | None:
        """The request's Thinking, or None when no thinking argument was given."""
        if self.thinking is None and self.thinking_budget is None and not self.include_thoughts:
            return None
        from gemini_failover.protocol import Thinking  # the request path's (see kinds.py)

        return Thinking(
            level=self.thinking,  # None: the model's default (only thoughts asked for)
            budget=self.thinking_budget,
            include_thoughts=self.include_thoughts,
        )


#: No feature arguments given.
DEFAULT = Options()
