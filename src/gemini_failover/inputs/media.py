"""What a file is, by its content: MIME types from magic bytes (the extension is a hint
that must agree), durations and PDF page counts for token estimates.

Hand-written rather than a library: the types Gemini takes are a short, fixed list whose
signatures fit in a table, and the package may add one dependency only (``pathspec``);
``python-magic`` would also need libmagic on the user's machine.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

#: Extension -> the MIME type Gemini takes for it (images, PDF, audio, video).
EXTENSIONS: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".pdf": "application/pdf",
    ".wav": "audio/wav",
    ".mp3": "audio/mp3",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/mov",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".avi": "video/avi",
    ".flv": "video/x-flv",
    ".webm": "video/webm",
    ".wmv": "video/wmv",
    ".3gp": "video/3gpp",
}

#: Types that share a container and cannot always be told apart by content: the
#: extension decides between them.
_FAMILIES = (
    frozenset({"video/mp4", "video/mov", "video/3gpp"}),
    frozenset({"image/heic", "image/heif"}),
    frozenset({"audio/mp3", "audio/aac"}),
    frozenset({"video/webm"}),
)

#: Bytes of a file's head that :func:`sniff` needs.
HEAD_BYTES = 64

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def sniff(head: bytes, hint: str | None = None) -> str | None:
    """The MIME type the content's magic bytes show, or None. Weak signatures (MP3/AAC
    frame sync, MPEG program stream) count only when the extension ``hint`` says so."""
    strong = _strong(head)
    if strong is not None:
        return strong
    if hint in ("audio/mp3", "audio/aac"):
        if head.startswith(b"ID3"):
            return hint
        if len(head) >= 2 and head[0] == 0xFF:
            if head[1] & 0xF6 == 0xF0:
                return "audio/aac"  # ADTS: 12-bit sync, layer 00
            if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
                return "audio/mp3"  # MPEG audio frame sync, layer I-III
    if hint == "video/mpeg" and head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "video/mpeg"
    return None


def _strong(h: bytes) -> str | None:
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if h.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if h.startswith(b"%PDF-"):
        return "application/pdf"
    if h[:4] == b"RIFF":
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/avi"}.get(h[8:12])
    if h[:4] == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if h.startswith(b"fLaC"):
        return "audio/flac"
    if h.startswith(b"OggS"):
        return "audio/ogg"
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand in _HEIC_BRANDS:
            return "image/heic"
        if brand in _HEIF_BRANDS:
            return "image/heif"
        if brand == b"qt  ":
            return "video/mov"
        if brand.startswith((b"3gp", b"3g2")):
            return "video/3gpp"
        if brand in (b"M4A ", b"M4B ", b"avif", b"avis"):
            return None  # audio-only MP4 and AVIF: not types Gemini takes
        return "video/mp4"
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"  # EBML (WebM / Matroska)
    if h.startswith(b"FLV\x01"):
        return "video/x-flv"
    if h.startswith(_ASF):
        return "video/wmv"
    return None


def reconcile(sniffed: str | None, hint: str | None) -> str | None:
    """The MIME type to send, or None when the content is no media type. Raises
    ValueError when the extension promises a type that the content is not."""
    if hint is None:
        return sniffed
    if sniffed == hint:
        return hint
    if sniffed is not None and any(sniffed in f and hint in f for f in _FAMILIES):
        return hint
    what = sniffed or "not a recognised media type"
    raise ValueError(f"its extension says {hint} but its content is {what}")


# -- token estimates (as Gemini counts them) ----------------------------------------------

#: Gemini bills an image as 258 tokens (one tile; larger images may take several tiles
#: on some models, so this is a floor for big images).
IMAGE_TOKENS = 258
PDF_PAGE_TOKENS = 258
AUDIO_TOKENS_PER_SECOND = 32
VIDEO_TOKENS_PER_SECOND = 263  # frames at 1 fps plus the audio track
#: Characters per token for text (as the router estimates: ~4 for English and code).
CHARS_PER_TOKEN = 4.0
#: Assumed bitrates when a container's header gives no duration: typical compressed
#: audio (128 kbit/s) and web video (1 Mbit/s). Estimates, flagged as such.
ASSUMED_AUDIO_BYTES_PER_SECOND = 128_000 // 8
ASSUMED_VIDEO_BYTES_PER_SECOND = 1_000_000 // 8
#: Bytes per page assumed when a PDF's pages cannot be counted (compressed object
#: streams hide them): a text-heavy page is ~10-100 KB.
ASSUMED_PDF_BYTES_PER_PAGE = 50_000


def text_tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


@dataclass(frozen=True, slots=True)
class Measure:
    """What the token estimate of a media file rests on."""

    tokens: int
    pages: int | None = None
    seconds: float | None = None
    exact: bool = True  # False when the pages or duration are assumed from the size


ReadAt = Callable[[int, int], bytes]  # (offset, length) -> bytes (short at EOF)


def measure(mime: str, size: int, read_at: ReadAt, pdf_pages: int | None) -> Measure:
    """Token estimate for a media file; ``pdf_pages`` comes from a :class:`PdfPages`
    scan of the content (None when none was found)."""
    major = mime.split("/", 1)[0]
    if mime == "application/pdf":
        if pdf_pages:
            return Measure(pdf_pages * PDF_PAGE_TOKENS, pages=pdf_pages)
        pages = max(1, math.ceil(size / ASSUMED_PDF_BYTES_PER_PAGE))
        return Measure(pages * PDF_PAGE_TOKENS, pages=pages, exact=False)
    if major == "image":
        return Measure(IMAGE_TOKENS)
    per_second = AUDIO_TOKENS_PER_SECOND if major == "audio" else VIDEO_TOKENS_PER_SECOND
    seconds = _duration(mime, size, read_at)
    exact = seconds is not None
    if seconds is None:
        rate = (
            ASSUMED_AUDIO_BYTES_PER_SECOND if major == "audio" else ASSUMED_VIDEO_BYTES_PER_SECOND
        )
        seconds = size / rate
    return Measure(max(1, math.ceil(seconds * per_second)), seconds=seconds, exact=exact)


def _duration(mime: str, size: int, read_at: ReadAt) -> float | None:
    """Seconds stated by the container's header (WAV, FLAC, MP4/MOV/3GP), else None."""
    try:
        if mime == "audio/wav":
            return _wav_seconds(size, read_at)
        if mime == "audio/flac":
            info = read_at(8, 18)
            rate = int.from_bytes(info[10:13], "big") >> 4
            samples = int.from_bytes(info[13:18], "big") & 0xFFFFFFFFF
            return samples / rate if rate and samples else None
        if mime in ("video/mp4", "video/mov", "video/3gpp"):
            return _bmff_seconds(size, read_at)
    except (struct.error, ValueError, IndexError):
        return None
    return None


def _wav_seconds(size: int, read_at: ReadAt) -> float | None:
    pos, byte_rate, data = 12, 0, 0
    for _ in range(64):  # bounded: a malformed file cannot loop us
        header = read_at(pos, 8)
        if len(header) < 8:
            break
        cid, length = header[:4], struct.unpack("<I", header[4:])[0]
        if cid == b"fmt ":
            byte_rate = struct.unpack("<I", read_at(pos + 16, 4))[0]
        elif cid == b"data":
            data = min(length, size - pos - 8)
            break
        pos += 8 + length + (length & 1)
    return data / byte_rate if byte_rate and data else None


def _bmff_seconds(size: int, read_at: ReadAt) -> float | None:
    def boxes(start: int, end: int) -> list[tuple[bytes, int, int]]:
        found: list[tuple[bytes, int, int]] = []
        pos = start
        while pos + 8 <= end and len(found) < 64:
            header = read_at(pos, 16)
            length, kind = struct.unpack(">I4s", header[:8])
            head = 8
            if length == 1:
                length, head = struct.unpack(">Q", header[8:16])[0], 16
            elif length == 0:
                length = end - pos
            if length < head:
                break
            found.append((kind, pos + head, pos + length))
            pos += length
        return found

    for kind, body, end in boxes(0, size):
        if kind != b"moov":
            continue
        for inner, ibody, _ in boxes(body, end):
            if inner != b"mvhd":
                continue
            v = read_at(ibody, 32)
            if v[0] == 1:
                scale, duration = struct.unpack(">IQ", v[20:32])
            else:
                scale, duration = struct.unpack(">II", v[12:20])
            return duration / scale if scale else None
    return None


class PdfPages:
    """Counts a PDF's pages while its bytes stream past (the same pass that hashes it):
    the larger of the ``/Type /Page`` objects seen and the largest ``/Count`` of a page
    tree. Counting, not parsing: pages inside compressed object streams are invisible,
    and then :func:`measure` estimates from the size instead."""

    _PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
    _COUNT = re.compile(rb"/Count\s+(\d{1,7})")
    _OVERLAP = 32

    def __init__(self) -> None:
        self._tail = b""
        self._pages = 0
        self._count = 0

    def feed(self, chunk: bytes) -> None:
        buf = self._tail + chunk
        cut = max(0, len(buf) - self._OVERLAP)
        # Matches that start inside the overlap are counted with the next chunk.
        self._pages += sum(1 for m in self._PAGE.finditer(buf) if m.start() < cut)
        for m in self._COUNT.finditer(buf):
            if m.start() < cut:
                self._count = max(self._count, int(m.group(1)))
        self._tail = buf[cut:]

    def result(self) -> int | None:
        self._pages += len(self._PAGE.findall(self._tail))
        for m in self._COUNT.finditer(self._tail):
            self._count = max(self._count, int(m.group(1)))
        self._tail = b""
        return max(self._pages, self._count) or None
