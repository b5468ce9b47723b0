"""How a conversation exchange is stored: a versioned JSON document, as pure functions.

Hand-written over the standard ``json`` module rather than a serialisation library's
view of the dataclasses: the stored form is a wire format shared by every instance
and every version of the server reading the same Redis, so it is spelled out here
(short keys, a version number, strict decoding), independent of field renames in
:mod:`gemini_failover.protocol`.

Format version 1, one JSON object per exchange::

    {"v": 1, "at": <wall time>, "by": <model that served it, or null>,
     "u": <user turn>, "m": <model turn>, "g": <grounding, absent when none>}

    turn        {"t": text, "a": [attachment, ...]}            ("a" absent when none)
    attachment  {"k": "text", "l": label, "t": text}
                {"k": "media", "l": label, "mt": mime type, "n": size, "h": sha256,
                 "d": base64 data (absent when none), "p": path (absent when none)}
    grounding   {"q": [query, ...], "s": [[title, uri], ...],
                 "p": [[start, end, [source index, ...]], ...]}
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from gemini_failover.protocol import (
    Attachment,
    Grounding,
    Media,
    Role,
    Source,
    Support,
    TextFile,
    Turn,
)

__all__ = ["CODEC_VERSION", "CodecError", "Exchange", "decode_exchange", "encode_exchange"]

CODEC_VERSION = 1


class CodecError(ValueError):
    """A stored exchange this version cannot read (junk, or a newer format)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One question and its answer: a user turn and the model turn that answered it,
    kept or dropped together, with what is worth knowing about the answer."""

    user: Turn
    model: Turn
    #: The chain model that answered (``provenance.served_by``).
    served_by: str | None = None
    #: The Google Search sources and citations of the answer, offsets into its text.
    grounding: Grounding | None = None
    #: Wall-clock time (epoch seconds) of the answer.
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.user.role != "user" or self.model.role != "model":
            raise ValueError("an exchange is a user turn followed by a model turn")

    @property
    def turns(self) -> tuple[Turn, Turn]:
        return (self.user, self.model)


def encode_exchange(exchange: Exchange) -> str:
    """The exchange as compact JSON text, always encodable as UTF-8 (how it is stored
    and how its size is counted)."""
    doc: dict[str, Any] = {
        "v": CODEC_VERSION,
        "at": exchange.at,
        "by": exchange.served_by,
        "u": _encode_turn(exchange.user),
        "m": _encode_turn(exchange.model),
    }
    if exchange.grounding is not None:
        doc["g"] = _encode_grounding(exchange.grounding)
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a "\ud800" escape): escape all
        text = json.dumps(doc, separators=(",", ":"))
    return text


def decode_exchange(text: str | bytes) -> Exchange:
    """The inverse of :func:`encode_exchange`. Raises :class:`CodecError`."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise CodecError("an exchange is a JSON object")
        version = doc.get("v")
        if version != CODEC_VERSION:
            raise CodecError(f"exchange format version {version!r}, this server reads 1")
        served_by = doc["by"]
        if served_by is not None and not isinstance(served_by, str):
            raise CodecError("'by' is not a string")
        grounding = _decode_grounding(doc["g"]) if "g" in doc else None
        return Exchange(
            user=_decode_turn(doc["u"], "user"),
            model=_decode_turn(doc["m"], "model"),
            served_by=served_by,
            grounding=grounding,
            at=_number(doc["at"]),
        )
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CodecError(f"unreadable exchange: {type(exc).__name__}: {exc}") from exc


# -- turns ------------------------------------------------------------------------------


def _encode_turn(turn: Turn) -> dict[str, Any]:
    doc: dict[str, Any] = {"t": turn.text}
    if turn.attachments:
        doc["a"] = [_encode_attachment(a) for a in turn.attachments]
    return doc


def _decode_turn(doc: Any, role: Role) -> Turn:
    attachments = tuple(_decode_attachment(a) for a in _list(doc.get("a", [])))
    return Turn(role, _str(doc["t"]), attachments)


def _encode_attachment(item: Attachment) -> dict[str, Any]:
    if isinstance(item, TextFile):
        return {"k": "text", "l": item.label, "t": item.text}
    doc: dict[str, Any] = {
        "k": "media",
        "l": item.label,
        "mt": item.mime_type,
        "n": item.size,
        "h": item.sha256,
    }
    if item.data is not None:
        doc["d"] = base64.b64encode(item.data).decode("ascii")
    if item.path is not None:
        doc["p"] = item.path
    if item.tokens:
        doc["tk"] = item.tokens  # optional: routing needs the estimate when sent again
    return doc


def _decode_attachment(doc: Any) -> Attachment:
    kind = doc["k"]
    if kind == "text":
        return TextFile(_str(doc["l"]), _str(doc["t"]))
    if kind == "media":
        data = doc.get("d")
        path = doc.get("p")
        return Media(
            label=_str(doc["l"]),
            mime_type=_str(doc["mt"]),
            size=_int(doc["n"]),
            sha256=_str(doc["h"]),
            data=None if data is None else base64.b64decode(_str(data), validate=True),
            path=None if path is None else _str(path),
            tokens=_int(doc.get("tk", 0)),
        )
    raise CodecError(f"unknown attachment kind {kind!r}")


# -- grounding ----------------------------------------------------------------------------


def _encode_grounding(g: Grounding) -> dict[str, Any]:
    return {
        "q": list(g.queries),
        "s": [[s.title, s.uri] for s in g.sources],
        "p": [[p.start, p.end, list(p.sources)] for p in g.supports],
    }


def _decode_grounding(doc: Any) -> Grounding:
    sources = []
    for item in _list(doc["s"]):
        title, uri = _list(item)
        sources.append(Source(_str(title), _str(uri)))
    supports = []
    for item in _list(doc["p"]):
        start, end, indices = _list(item)
        supports.append(Support(_int(start), _int(end), tuple(_int(i) for i in _list(indices))))
    return Grounding(
        queries=tuple(_str(q) for q in _list(doc["q"])),
        sources=tuple(sources),
        supports=tuple(supports),
    )


# -- strict scalars ------------------------------------------------------------------------


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise CodecError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"expected an integer, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(f"expected a list, got {type(value).__name__}")
    return value
