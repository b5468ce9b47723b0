"""What the emulated model makes of non-text inputs: the modality of a MIME type, the
tokens a part costs, the profile's input checks, and the sentence the answer starts with
to say what it received (so tests can see that every part and URL arrived).

Token costs follow Gemini's published rates, with sizes standing in for what the
emulator does not decode: an image is 258 tokens; a PDF 258 per page (pages counted by
their ``/Type /Page`` objects); audio 32 per second and video 263 per second, at an
assumed 16 000 bytes (audio) and 250 000 bytes (video) per second; text files 1 token
per 4 bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .spec import Modality, Profile
from .text import count_tokens
from .wire import errors
from .wire.errors import ErrorReply
from .wire.inputs import PartInfo

__all__ = [
    "DETAIL_NAMES",
    "FileLookup",
    "InputPart",
    "UrlRead",
    "check_inputs",
    "media_tokens",
    "modality_of",
    "pdf_pages",
    "received_summary",
    "resolve_inputs",
    "url_status",
]

_IMAGES = {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "image/gif"}
_TEXT_APPLICATIONS = {
    "application/json",
    "application/xml",
    "application/javascript",
    "application/rtf",
    "application/x-yaml",
    "application/yaml",
    "application/sql",
}
_BINARY = {"application/octet-stream", "application/zip", "application/x-tar", "application/gzip"}


def modality_of(mime_type: str | None) -> Modality | None:
    """The input modality of a MIME type; None when Gemini does not take it."""
    if not mime_type:
        return None
    mime = mime_type.split(";", 1)[0].strip().lower()
    if mime in _IMAGES:
        return "image"
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("video/"):
        return "video"
    if mime == "application/pdf":
        return "pdf"
    if mime.startswith("text/") or mime in _TEXT_APPLICATIONS:
        return "text"
    if mime.startswith("application/x-") and mime not in _BINARY:
        return "text"  # source code: application/x-python, application/x-sh, ...
    return None


_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


def pdf_pages(data: bytes) -> int:
    """Pages of a PDF, by its ``/Type /Page`` objects (at least 1)."""
    return max(1, len(_PAGE.findall(data)))


#: usageMetadata modality names.
DETAIL_NAMES: dict[str, str] = {
    "text": "TEXT",
    "image": "IMAGE",
    "audio": "AUDIO",
    "video": "VIDEO",
    "pdf": "DOCUMENT",
}


def media_tokens(modality: Modality, size: int, pages: int = 1) -> int:
    """Prompt tokens of one non-text part (see the module docstring)."""
    if modality == "image":
        return 258
    if modality == "pdf":
        return 258 * max(1, pages)
    if modality == "audio":
        return 32 * max(1, math.ceil(size / 16_000))
    if modality == "video":
        return 263 * max(1, math.ceil(size / 250_000))
    return count_tokens(size)


@dataclass(frozen=True, slots=True)
class InputPart:
    """A non-text part with what the emulator knows of it: modality, size (bytes),
    pages (PDFs), the ``files/{id}`` it refers to (file data), and which turn it is in."""

    kind: str
    mime_type: str
    modality: Modality
    size: int
    pages: int = 1
    file_name: str | None = None
    file_uri: str | None = None
    role: str = "user"
    first_turn: bool = False

    @property
    def tokens(self) -> int:
        return media_tokens(self.modality, self.size, self.pages)


@dataclass(frozen=True, slots=True)
class UrlRead:
    """A URL the URL-context tool read, and how that went."""

    url: str
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "URL_RETRIEVAL_STATUS_SUCCESS"


def url_status(url: str) -> str:
    """Deterministic: hosts under ``.invalid`` fail (``URL_RETRIEVAL_STATUS_ERROR``),
    every other URL is read."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    if host.endswith(".invalid") or host == "invalid":
        return "URL_RETRIEVAL_STATUS_ERROR"
    return "URL_RETRIEVAL_STATUS_SUCCESS"


def check_inputs(
    model: str, profile: Profile, parts: Sequence[InputPart], tools: Sequence[str]
) -> ErrorReply | None:
    """400 for an input modality or a tool the profile lacks."""
    for part in parts:
        if part.modality not in profile.input_modalities:
            name = "PDF" if part.modality == "pdf" else part.modality.capitalize()
            return errors.invalid_argument(
                f"{name} input modality is not enabled for models/{model}"
            )
    if "urlContext" in tools and not profile.url_context:
        return errors.invalid_argument(f"Url context is not supported for models/{model}.")
    if "googleSearch" in tools and not profile.google_search:
        return errors.invalid_argument(f"Search Grounding is not supported for models/{model}.")
    return None


def received_summary(parts: Sequence[InputPart], urls: Sequence[UrlRead]) -> str:
    """The sentences an answer starts with when its first user turn had non-text parts
    or URLs the URL-context tool read: ``Received image/png, 68 bytes.`` (``, files/x``
    for file data) and ``Read https://...`` / ``Could not read https://...``; each
    sentence ends with ``". "``. Empty when there is nothing to say."""
    sentences: list[str] = []
    for part in parts:
        where = f", {part.file_name}" if part.file_name else ""
        sentences.append(f"Received {part.mime_type}, {part.size} bytes{where}. ")
    for read in urls:
        sentences.append(f"{'Read' if read.ok else 'Could not read'} {read.url} . ")
    return "".join(sentences)


#: A Files API (or other) URI -> (MIME type, size, PDF pages, ``files/{id}`` or None),
#: or the error to answer.
FileLookup = Callable[[str], "tuple[str, int, int, str | None] | ErrorReply"]


def resolve_inputs(
    parts: Sequence[PartInfo], first_turn: int, lookup: FileLookup
) -> tuple[InputPart, ...] | ErrorReply:
    """The non-text parts of a request with their modality and size; a 400 for a
    missing or unsupported MIME type or undecodable inline data, the lookup's error for a
    file URI it does not accept."""
    found: list[InputPart] = []
    for part in parts:
        first = part.turn == first_turn and part.role == "user"
        if part.kind == "inline_data":
            modality = modality_of(part.mime_type)
            if part.mime_type is None:
                return errors.invalid_argument("inline_data.mime_type is required.")
            if modality is None:
                return errors.invalid_argument(f"Unsupported MIME type: {part.mime_type}")
            if part.size is None or part.data is None:
                return errors.invalid_argument(
                    "Invalid value at 'inline_data.data' (TYPE_BYTES), Base64 decoding failed."
                )
            pages = pdf_pages(part.data) if modality == "pdf" else 1
            found.append(
                InputPart(
                    "inline_data",
                    part.mime_type,
                    modality,
                    part.size,
                    pages,
                    role=part.role,
                    first_turn=first,
                )
            )
        elif part.kind == "file_data":
            if not part.file_uri:
                return errors.invalid_argument("file_data.file_uri is required.")
            looked = lookup(part.file_uri)
            if isinstance(looked, ErrorReply):
                return looked
            file_mime, size, pages, name = looked
            mime = part.mime_type or file_mime
            file_modality = modality_of(mime)
            if file_modality is None:
                return errors.invalid_argument(f"Unsupported MIME type: {mime}")
            found.append(
                InputPart(
                    "file_data",
                    mime,
                    file_modality,
                    size,
                    pages,
                    name,
                    part.file_uri,
                    part.role,
                    first,
                )
            )
    return tuple(found)
