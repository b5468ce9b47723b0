"""Checks that run before any upstream call, and the bounds they enforce.

Ranges and list lengths are pydantic ``Field`` constraints on the tool parameters (the
SDK rejects them before the handler runs, and they appear in the input schema the model
sees). What a JSON Schema cannot say lives here: whitespace-only text, sizes in bytes,
valid Unicode, chat turn order, and whether a JSON Schema is itself valid. Every failure
is a ``ToolError`` whose message names the argument and says what to change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
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
#: A response schema larger than this is almost certainly a mistake.
MAX_SCHEMA_BYTES = 64 * 1024


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


def check_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A valid JSON Schema whose every ``$ref`` resolves inside it; returns a copy."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        encoded = json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError):
        raise ToolError("schema must be plain JSON (no NaN or Infinity)") from None
    size = utf8_size("schema", encoded)
    if size > MAX_SCHEMA_BYTES:
        raise ToolError(f"schema is {size:,} bytes; the limit is {MAX_SCHEMA_BYTES:,} bytes")
    copy: dict[str, Any] = json.loads(encoded)
    cls = validator_for(copy)
    try:
        cls.check_schema(copy)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise ToolError(f"schema is not a valid JSON Schema at {where}: {exc.message}") from None
    for ref in _refs(copy):
        _check_ref(copy, ref)
    validator = cls(copy)
    try:
        probes: tuple[Any, ...] = (None, {}, [], "", 0)
        for probe in probes:
            validator.is_valid(probe)
    except RecursionError:
        raise ToolError(
            "schema refers to itself without end (a $ref cycle); give every recursion a base case"
        ) from None
    return copy


def _refs(node: Any) -> Iterable[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _check_ref(root: dict[str, Any], ref: Any) -> None:
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise ToolError(
            f"schema has $ref {ref!r}; only references inside the schema are supported "
            "(for example '#/$defs/item')"
        )
    pointer = ref[1:]
    node: Any = root
    if pointer and not pointer.startswith("/"):
        raise ToolError(f"schema has $ref {ref!r}, which is not a JSON Pointer ('#/...')")
    for raw in pointer.split("/")[1:] if pointer else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ToolError(f"schema has $ref {ref!r}, which points nowhere inside the schema")
    if not isinstance(node, dict | bool):
        raise ToolError(f"schema has $ref {ref!r}, which does not point to a schema")
