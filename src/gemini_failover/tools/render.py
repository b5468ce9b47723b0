"""What the calling model reads (``content``) and what a program reads
(``structuredContent``, described by a lean ``outputSchema``).

The text is the answer itself (for JSON: the value, compact), followed by at most one
short provenance line when something worth knowing happened: a failover, a
continuation on another model, retries, a skipped model, an answer cut short by the
token cap. A generation's last line names its conversation (``[conversation_id: …]``)
unless ``conversations.id_in_text`` is off. Everything else (attempts, spans, usage,
request id) is structured content only. Embeddings never appear as text: one line
says how many, how long, from which model. An answer longer than
``CONTENT_TEXT_LIMIT`` characters is cut in the text with a line saying so; the
structured content always has all of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from gemini_failover.tools.models import (
    CountTokensOutput,
    EmbedOutput,
    FilesOutput,
    GenerateOutput,
    JsonOutput,
    ProvenanceOutput,
    Span,
)

#: Longest answer put into the text content, in characters (~25k tokens). Longer
#: answers are cut there, with a line that says so; structuredContent has them whole.
CONTENT_TEXT_LIMIT = 100_000

#: Every JSON type: the type of a value that may be any JSON value.
ANY_JSON_TYPE = ["object", "array", "string", "number", "integer", "boolean", "null"]


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _limited(text: str, where: str) -> str:
    if len(text) <= CONTENT_TEXT_LIMIT:
        return text
    return (
        text[:CONTENT_TEXT_LIMIT]
        + f"\n[cut here: {CONTENT_TEXT_LIMIT:,} of {len(text):,} characters shown; "
        f"the whole answer is in {where}]"
    )


def provenance_line(
    out: ProvenanceOutput, spans: Sequence[Span] = (), finish_reason: str | None = None
) -> str | None:
    """One line when something noteworthy happened; None when the first model simply
    answered."""
    notes = [f"failover {f.from_} -> {f.to} ({f.reason})" for f in out.failovers]
    if len(spans) > 1:
        notes.append(
            "continued mid-answer on "
            + ", ".join(f"{s.model} from character {s.start:,}" for s in spans[1:])
        )
    if len(out.attempts) > 1:
        notes.append(f"{len(out.attempts)} attempts")
    notes.extend(f"{s.model} skipped ({s.reason})" for s in out.skipped)
    if finish_reason == "MAX_TOKENS":
        notes.append("stopped at max_output_tokens: the answer is incomplete")
    elif finish_reason not in (None, "STOP"):
        notes.append(f"finish reason {finish_reason}")
    if not notes:
        return None
    return f"[served by {out.served_by}: {'; '.join(notes)}; request {out.request_id}]"


def files_line(files: FilesOutput | None) -> str | None:
    """One short line when files were left out (the details are structured only)."""
    if files is None or not files.left_out_counts:
        return None
    left = sum(c.count for c in files.left_out_counts)
    why = ", ".join(f"{c.reason} {c.count}" for c in files.left_out_counts)
    return (
        f"[files: {len(files.included)} included, {left} left out ({why}); "
        "see structuredContent.files]"
    )


def _result(
    text: str,
    note: str | None,
    structured: Mapping[str, Any],
    files_note: str | None = None,
    last: str | None = None,
) -> CallToolResult:
    if note is not None:
        text = f"{text}\n\n{note}" if text else note
    if files_note is not None:
        text = f"{text}\n{files_note}" if note is not None else f"{text}\n\n{files_note}"
    if last is not None:  # the conversation's line: always the text's last
        text = (
            f"{text}\n{last}" if note is not None or files_note is not None else f"{text}\n\n{last}"
        )
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=dict(structured)
    )


def _dump(model: BaseModel) -> dict[str, Any]:
    out = model.model_dump(mode="json", by_alias=True)
    if out.get("files", 0) is None:  # no files or urls: not in the result at all
        del out["files"]
    return out


def sources_line(out: GenerateOutput) -> str | None:
    """ "Sources: [1] title — uri; [2] ..." for a grounded answer (each page once)."""
    pages = list(dict.fromkeys((c.title, c.uri) for c in out.citations))
    if not pages:
        return None
    return "Sources: " + "; ".join(
        f"[{i}] {title} — {uri}" if title else f"[{i}] {uri}"
        for i, (title, uri) in enumerate(pages, 1)
    )


def generated(out: GenerateOutput, *, conversation_id_in_text: bool = True) -> CallToolResult:
    notes = [
        n for n in (sources_line(out), provenance_line(out, out.spans, out.finish_reason)) if n
    ]
    note = "\n\n".join(notes) if notes else None
    return _result(
        _limited(out.text, "structuredContent.text"),
        note,
        _dump(out),
        files_line(out.files),
        conversation_line(out, show_id=conversation_id_in_text),
    )


def conversation_line(out: GenerateOutput, *, show_id: bool = True) -> str | None:
    """Names the thread to continue (``show_id``: a client that shows the calling model
    only the text has no other way to see it), and says when the conversation dropped
    old turns (its size cap) or was not saved."""
    if out.conversation_note:
        return f"[conversation_id: {out.conversation_id or '(none)'} ({out.conversation_note})]"
    if show_id and out.conversation_id:
        return f"[conversation_id: {out.conversation_id}]"
    return None


def generated_json(out: JsonOutput) -> CallToolResult:
    text = _limited(compact(out.value), "structuredContent.value")
    return _result(text, provenance_line(out), _dump(out), files_line(out.files))


def counted(out: CountTokensOutput) -> CallToolResult:
    return _result(
        f"{out.total_tokens:,} tokens", provenance_line(out), _dump(out), files_line(out.files)
    )


def embedded(out: EmbedOutput) -> CallToolResult:
    count = len(out.embeddings)
    summary = (
        f"{count} embedding{'s' if count != 1 else ''}, {out.dimensions} dimensions each, "
        f"from {out.served_by} (the vectors are in structuredContent.embeddings)"
    )
    return _result(summary, provenance_line(out), _dump(out))


def document(doc: Mapping[str, Any]) -> CallToolResult:
    """A JSON document (models, health): the object itself, compact."""
    return _result(_limited(compact(doc), "structuredContent"), None, doc)


# -- lean output schemas ------------------------------------------------------------------


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema for outputSchema, lean: refs inlined, objects closed, no
    titles, descriptions or defaults (the fields are described in docs/server.md); a
    field typed Any is declared as any JSON type."""
    from gemini_failover.tools.arguments import portable_schema

    full = portable_schema(model.model_json_schema(by_alias=True, mode="serialization"))
    schema: dict[str, Any] = _bare(full)
    for prop in schema.get("properties", {}).values():
        if "type" not in prop and "enum" not in prop:
            prop["type"] = ANY_JSON_TYPE
    return schema


def _bare(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (_bare(v) if k != "properties" else {n: _bare(p) for n, p in v.items()})
            for k, v in node.items()
            if k not in ("description", "default")
        }
    if isinstance(node, list):
        return [_bare(v) for v in node]
    return node
