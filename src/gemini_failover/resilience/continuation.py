"""Mid-stream continuation: ask the next model to carry on, stitch without duplication.

When a streamed answer breaks half-way, the manager asks the next model (or the same
one again) to continue from what the client already received
(:func:`continuation_request`). Continuing models often repeat the last few words;
:class:`Stitcher` trims that overlap at the head of each continuation segment so the
client sees one seamless answer, never a duplicate and never a retraction.

Pure policy: no I/O, no SDK imports.

Overlap rule (:func:`trim_overlap`): the continuation head, after an optional run of
leading whitespace, may start with ``sent[p:]`` for a *word start* ``p`` of the sent
text (``p == 0`` or ``sent[p - 1]`` is whitespace, and ``sent[p]`` is not) inside the
last ``window`` characters. The longest such ``sent[p:]`` is dropped, together with
the whitespace before it. So ``"...quick brown fox"`` followed by
``" brown fox jumps"`` stitches to ``"...quick brown fox jumps"``, and a cut mid-word,
``"...hel"`` followed by ``"hello world"``, to ``"...hello world"``. Matching is
otherwise exact: whitespace is only forgiven at the very head, and leading whitespace
that is not followed by a repeat is kept (``"fox "`` + ``" jumps"`` keeps both spaces).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from gemini_failover.protocol import GenerationRequest, Turn

__all__ = [
    "CONTINUE_INSTRUCTION",
    "DEFAULT_WINDOW",
    "Span",
    "Stitcher",
    "continuation_request",
    "trim_overlap",
]

#: The user turn that follows the partial answer in a continuation request.
CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stopped, "
    "mid-word or mid-sentence if needed. Do not repeat any text you already wrote, "
    "do not start over, and do not add a preamble, commentary or closing remark: "
    "output only the continuation, as if the answer had never been interrupted."
)

#: How many trailing characters of the sent text a repeat may start in.
DEFAULT_WINDOW = 512

# A non-whitespace character at the start of the text or after whitespace. The
# lookbehind also sees characters before ``pos``; ``\s`` is exactly str.isspace().
_WORD_START = re.compile(r"(?<!\S)\S")


def continuation_request(request: GenerationRequest, partial: str) -> GenerationRequest:
    """The request that asks a model to continue ``partial``, an answer to ``request``.

    Appends the partial answer as a ``model`` turn and :data:`CONTINUE_INSTRUCTION` as a
    ``user`` turn; every other field is unchanged. If the conversation already ends
    with a ``model`` turn, the partial answer extends it (no two model turns in a row).
    With nothing sent yet (``partial == ""``) the original request is returned: that is
    a plain retry, not a continuation.
    """
    if not partial:
        return request
    contents = request.contents
    if contents and contents[-1].role == "model":
        contents = (*contents[:-1], Turn("model", contents[-1].text + partial))
    else:
        contents = (*contents, Turn("model", partial))
    return dataclasses.replace(request, contents=(*contents, Turn("user", CONTINUE_INSTRUCTION)))


def _word_starts(sent: str, lo: int) -> list[int]:
    """Word-start positions of ``sent`` at or after ``lo``, ascending."""
    return [m.start() for m in _WORD_START.finditer(sent, lo)]


def trim_overlap(sent: str, head: str, window: int = DEFAULT_WINDOW) -> int:
    """How many leading characters of ``head`` repeat the end of ``sent``.

    ``head`` is the complete head of a continuation (or the whole of it). Returns
    ``len(ws) + len(sent[p:])`` for the smallest word start ``p >= len(sent) - window``
    such that ``head == ws + sent[p:] + rest`` with ``ws`` whitespace, else 0. See the
    module docstring for the rule.
    """
    body = head.lstrip()
    if not body:
        return 0
    n = len(sent)
    # Only candidates no longer than the body can be fully repeated by it.
    for p in _word_starts(sent, max(0, n - window, n - len(body))):
        if body.startswith(sent[p:]):
            return len(head) - len(body) + n - p
    return 0


@dataclass(frozen=True, slots=True)
class Span:
    """Characters ``[start, end)`` of the stitched text, produced by ``model``."""

    model: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


class Stitcher:
    """Stitches one streamed answer from successive segments, each from one model.

    Usage: ``start(model)``, then ``feed(delta)`` for each raw delta (send what it
    returns to the client), then ``finish()`` when the segment's stream completes or
    ``abandon()`` when it breaks; then ``start()`` the next segment (a continuation,
    asked with :func:`continuation_request` from :attr:`text`), and so on.

    A segment that starts after text was emitted is a continuation: its head is held
    back only while it could still be a repeat of the sent text (it is a proper prefix
    of some candidate ``sent[p:]``, or only whitespace so far). As soon as no longer
    repeat is possible, the longest fully repeated candidate (if any) is dropped and the
    rest is emitted; from then on deltas pass straight through. The result always
    equals ``sent + head[trim_overlap(sent, head):]`` for the segment's full output.

    Cost: each undecided delta is checked against the still-possible candidates (at
    most one per word start in the window, pruned as they diverge, compared at C
    speed); a decided segment costs one list append per delta.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.window = window
        self._parts: list[str] = []
        self._len = 0
        self._spans: list[Span] = []
        self._trims: list[int] = []
        self._overlap = 0
        self._discarded = 0
        # The open segment.
        self._model: str | None = None
        self._seg_start = 0
        self._deciding = False
        self._sent = ""  # text at segment start, while deciding
        self._held = ""  # held-back head, while deciding
        self._alive: list[int] = []  # candidates p still possibly repeated, ascending
        self._best = 0  # length of the longest fully repeated candidate so far

    # -- segments ---------------------------------------------------------------

    def start(self, model: str) -> None:
        """Begin a segment from ``model``; a continuation if any text was emitted."""
        if self._model is not None:
            raise RuntimeError("a segment is open: call finish() or abandon() first")
        self._model = model
        self._seg_start = self._len
        self._held = ""
        self._best = 0
        sent = self.text if self.window else ""
        self._alive = _word_starts(sent, max(0, len(sent) - self.window)) if sent else []
        if self._alive:
            self._deciding = True
            self._sent = sent
        else:  # first segment, or nothing a repeat could start at
            self._deciding = False
            self._trims.append(0)

    def feed(self, text: str) -> str:
        """Take a raw delta of the open segment; return what may be sent now."""
        if self._model is None:
            raise RuntimeError("no open segment: call start() first")
        if not self._deciding:
            if text:
                self._emit(text)
            return text
        if not text:
            return ""
        self._held += text
        body = self._held.lstrip()
        if not body:  # whitespace only: a repeat may still follow
            return ""
        m = len(body)
        n = len(self._sent)
        pending: list[int] = []
        for p in self._alive:
            if n - p > m:
                if self._sent.startswith(body, p):
                    pending.append(p)
            elif body.startswith(self._sent[p:]):
                self._best = max(self._best, n - p)
        self._alive = pending
        if pending:
            return ""
        return self._decide()

    def finish(self) -> str:
        """End the segment (its stream completed); return the held text it releases."""
        if self._model is None:
            raise RuntimeError("no open segment")
        out = self._decide() if self._deciding else ""
        self._close()
        return out

    def abandon(self) -> None:
        """End the segment (its stream broke); undecided held text is discarded, since
        the next continuation is asked from what was actually sent."""
        if self._model is None:
            raise RuntimeError("no open segment")
        if self._deciding:
            self._discarded += len(self._held)
            self._trims.append(0)
            self._reset_decision()
        self._close()

    # -- state ------------------------------------------------------------------

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def spans(self) -> list[Span]:
        """Which model produced which characters of :attr:`text` (empty segments omitted)."""
        if self._model is not None and self._len > self._seg_start:
            return [*self._spans, Span(self._model, self._seg_start, self._len)]
        return list(self._spans)

    @property
    def model(self) -> str | None:
        """The model of the open segment, or None."""
        return self._model

    @property
    def deciding(self) -> bool:
        """Whether the open segment's head is still being held back."""
        return self._deciding

    @property
    def held(self) -> str:
        """Text received but not yet emitted (the undecided head)."""
        return self._held

    @property
    def overlap_trimmed(self) -> int:
        """Total characters trimmed as repeats, over all segments."""
        return self._overlap

    @property
    def trims(self) -> list[int]:
        """Characters trimmed per decided segment, in order (0 for a first segment and
        for a segment abandoned undecided)."""
        return list(self._trims)

    @property
    def last_trim(self) -> int:
        """Characters trimmed from the most recently decided segment."""
        return self._trims[-1] if self._trims else 0

    @property
    def discarded(self) -> int:
        """Total held characters dropped by :meth:`abandon`."""
        return self._discarded

    # -- internals --------------------------------------------------------------

    def _decide(self) -> str:
        held = self._held
        body = held.lstrip()
        trim = len(held) - len(body) + self._best if self._best else 0
        self._trims.append(trim)
        self._overlap += trim
        self._reset_decision()
        out = held[trim:]
        if out:
            self._emit(out)
        return out

    def _reset_decision(self) -> None:
        self._deciding = False
        self._sent = ""
        self._held = ""
        self._alive = []
        self._best = 0

    def _emit(self, text: str) -> None:
        self._parts.append(text)
        self._len += len(text)

    def _close(self) -> None:
        if self._model is not None and self._len > self._seg_start:
            self._spans.append(Span(self._model, self._seg_start, self._len))
        self._model = None
