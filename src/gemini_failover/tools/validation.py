"""Checks that run before any upstream call, and the bounds they enforce.

Ranges and list lengths are pydantic ``Field`` constraints on the tool parameters (the
SDK rejects them before the handler runs, and they appear in the input schema the model
sees). What a JSON Schema cannot say lives here: whitespace-only text, sizes in bytes,
valid Unicode, chat turn order, and whether a JSON Schema is itself valid. Every failure
is a ``ToolError`` whose message names the argument and says what to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

#: Largest input of one call, in UTF-8 bytes (prompt + system instruction, all chat
#: turns, all texts to embed). Gemini's biggest context windows hold ~1M tokens,
#: ~4 MB of text; anything larger cannot be served and only costs memory.
MAX_INPUT_BYTES = 4 * 1024 * 1024
#: Upper bound accepted for max_output_tokens; the model's own limit (models.get) is
#: enforced by the failover manager's capability check.
MAX_OUTPUT_TOKENS = 1_048_576
#: Gemini accepts at most five stop sequences.
MAX_STOP_SEQUENCES = 5
MAX_STOP_SEQUENCE_CHARS = 256
MAX_CHAT_TURNS = 1000
#: batchEmbedContents takes at most 100 texts per call.
MAX_EMBED_TEXTS = 100


def utf8_size(name: str, text: str) -> int:
    """Bytes of ``text`` in UTF-8; rejects strings that are not valid Unicode."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"{name} contains invalid Unicode (an unpaired surrogate at character "
            f"{exc.start}); send valid UTF-8 text"
        ) from None


def require_text(name: str, text: str) -> int:
    """A non-blank, valid string; returns its size in bytes."""
    if not text.strip():
        raise ToolError(f"{name} is empty or only whitespace; give the text to send to Gemini")
    return utf8_size(name, text)


def check_total_size(what: str, size: int) -> None:
    if size > MAX_INPUT_BYTES:
        raise ToolError(
            f"{what} is {size:,} bytes; the limit is {MAX_INPUT_BYTES:,} bytes (4 MiB). "
            "Shorten it or split it across several calls."
        )


def check_prompt(prompt: str, system_instruction: str | None) -> None:
    size = require_text("prompt", prompt)
    if system_instruction is not None:
        size += require_text("system_instruction", system_instruction)
    check_total_size("the prompt (with the system instruction)", size)


def check_stop_sequences(stop_sequences: Sequence[str] | None) -> tuple[str, ...]:
    if not stop_sequences:
        return ()
    for i, seq in enumerate(stop_sequences):
        if not seq:
            raise ToolError(f"stop_sequences[{i}] is empty; remove it or give the text to stop at")
        utf8_size(f"stop_sequences[{i}]", seq)
    return tuple(stop_sequences)


def check_turns(turns: Sequence[tuple[str, str]], system_instruction: str | None) -> None:
    """Chat turns: (role, text) pairs, user first and last, roles alternating is not
    required (Gemini merges consecutive turns), every text non-blank."""
    if not turns:
        raise ToolError("turns is empty; give at least one user turn")
    size = 0
    for i, (role, text) in enumerate(turns):
        if role not in ("user", "model"):
            raise ToolError(f"turns[{i}].role is {role!r}; use 'user' or 'model'")
        size += require_text(f"turns[{i}].text", text)
    if turns[0][0] != "user":
        raise ToolError("turns[0] must be a user turn: a conversation starts with the user")
    if turns[-1][0] != "user":
        raise ToolError(
            f"the last turn (turns[{len(turns) - 1}]) must be a user turn: it is what "
            "Gemini answers"
        )
    if system_instruction is not None:
        size += require_text("system_instruction", system_instruction)
    check_total_size("the conversation (with the system instruction)", size)


def check_texts(texts: Sequence[str]) -> None:
    if not texts:
        raise ToolError("texts is empty; give between 1 and 100 texts to embed")
    if len(texts) > MAX_EMBED_TEXTS:
        raise ToolError(
            f"texts has {len(texts)} items; at most {MAX_EMBED_TEXTS} per call. "
            "Split them across several calls."
        )
    size = sum(require_text(f"texts[{i}]", t) for i, t in enumerate(texts))
    check_total_size("the texts", size)


async def check_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A valid JSON Schema, every reference resolved inside it, within the limits of
    jsonschema_guard (checked off the event loop); returns a copy."""
    from gemini_failover import jsonschema_worker

    try:
        encoded = await jsonschema_worker.check_schema(schema)
    except jsonschema_worker.SchemaRefused as exc:
        raise ToolError(str(exc)) from None
    return jsonschema_worker.decode(encoded)
