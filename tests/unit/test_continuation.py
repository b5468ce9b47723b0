"""Continuation policy: the continuation request, overlap trimming and stitching."""

from __future__ import annotations

import itertools
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_failover.protocol import GenerationRequest, Turn
from gemini_failover.resilience.continuation import (
    CONTINUE_INSTRUCTION,
    DEFAULT_WINDOW,
    Span,
    Stitcher,
    continuation_request,
    trim_overlap,
)

# -- helpers -------------------------------------------------------------------


class Recorder:
    """Drives a Stitcher and checks after every call that emitted text only grows."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.st = Stitcher(window)
        self.returns: list[str] = []

    def _check(self, before: str, out: str) -> str:
        assert self.st.text == before + out
        return out

    def segment(self, model: str, deltas: list[str], *, broken: bool = False) -> str:
        self.st.start(model)
        emitted = [self.feed(d) for d in deltas]
        if broken:
            before = self.st.text
            self.st.abandon()
            assert self.st.text == before
        else:
            before = self.st.text
            emitted.append(self._check(before, self.st.finish()))
        return "".join(emitted)

    def feed(self, delta: str) -> str:
        before = self.st.text
        out = self._check(before, self.st.feed(delta))
        self.returns.append(out)
        return out


def stitch(first: str, cont: str, window: int = DEFAULT_WINDOW) -> Stitcher:
    st = Stitcher(window)
    st.start("a")
    st.feed(first)
    st.finish()
    st.start("b")
    st.feed(cont)
    st.finish()
    return st


def chars(text: str) -> list[str]:
    return list(text)


def ref_trim(sent: str, head: str, window: int) -> int:
    """The overlap rule, written the slow obvious way."""
    body = head.lstrip()
    if not body:
        return 0
    lead = len(head) - len(body)
    best = 0
    for p in range(max(0, len(sent) - window), len(sent)):
        word_start = (p == 0 or sent[p - 1].isspace()) and not sent[p].isspace()
        if word_start and body.startswith(sent[p:]):
            best = max(best, len(sent) - p)
    return lead + best if best else 0


def assert_spans_cover(st: Stitcher) -> None:
    pos = 0
    for span in st.spans:
        assert span.start == pos
        assert span.end > span.start
        pos = span.end
    assert pos == len(st.text)


SENT = "The quick brown fox jumps over the lazy dog and keeps running far away"


# -- continuation_request ------------------------------------------------------


def test_continuation_request_appends_partial_and_instruction() -> None:
    req = GenerationRequest(
        contents=(Turn("user", "hi"), Turn("model", "hello"), Turn("user", "tell a story")),
        system_instruction="be brief",
        temperature=0.3,
        max_output_tokens=100,
        stop_sequences=("END",),
    )
    cont = continuation_request(req, "Once upon a ti")
    assert cont.contents == (
        *req.contents,
        Turn("model", "Once upon a ti"),
        Turn("user", CONTINUE_INSTRUCTION),
    )
    assert cont.contents[0] == Turn("user", "hi")
    assert cont.system_instruction == "be brief"
    assert cont.temperature == 0.3
    assert cont.max_output_tokens == 100
    assert cont.stop_sequences == ("END",)
    assert req.contents[-1] == Turn("user", "tell a story")  # original untouched


def test_continuation_request_extends_trailing_model_turn() -> None:
    req = GenerationRequest(contents=(Turn("user", "q"), Turn("model", "Sure: ")))
    cont = continuation_request(req, "first")
    assert cont.contents == (
        Turn("user", "q"),
        Turn("model", "Sure: first"),
        Turn("user", CONTINUE_INSTRUCTION),
    )


def test_continuation_request_with_nothing_sent_is_the_original() -> None:
    req = GenerationRequest.from_prompt("q")
    assert continuation_request(req, "") is req


def test_continuation_of_a_continuation_keeps_one_conversation() -> None:
    req = GenerationRequest.from_prompt("q")
    once = continuation_request(req, "abc")
    # The manager always builds from the original request and everything sent.
    twice = continuation_request(req, "abc def")
    assert once.contents[-2] == Turn("model", "abc")
    assert twice.contents == (
        Turn("user", "q"),
        Turn("model", "abc def"),
        Turn("user", CONTINUE_INSTRUCTION),
    )


def test_instruction_wording() -> None:
    text = CONTINUE_INSTRUCTION.lower()
    assert "exactly where it stopped" in text
    assert "do not repeat" in text
    assert "only the continuation" in text


# -- trim_overlap --------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "head", "expected"),
    [
        ("quick brown fox", "jumps over", 0),
        ("quick brown fox", "fox jumps", 3),
        ("quick brown fox", "brown fox jumps", 9),
        ("quick brown fox", "quick brown fox jumps", 15),
        ("quick brown fox", " brown fox jumps", 10),  # tolerated leading space
        ("quick brown fox", "\n\nfox jumps", 5),
        ("quick brown fox", " jumps", 0),  # whitespace alone is not a repeat
        ("quick brown fox ", "fox jumps", 4),
        ("quick brown fox ", "jumps", 0),
        ("say hel", "hello world", 3),  # cut mid-word
        ("say hel", "lo world", 0),
        ("say hel", "llo world", 0),  # not from a word start
        ("quick brown fox", "own fox jumps", 0),  # not from a word start
        ("quick brown fox", "fox", 3),  # continuation no longer than the repeat
        ("quick brown fox", "fo", 0),  # a partial repeat is not a repeat
        ("", "anything", 0),
        ("quick", "", 0),
        ("quick", "   ", 0),
    ],
)
def test_trim_overlap_examples(sent: str, head: str, expected: int) -> None:
    assert trim_overlap(sent, head) == expected
    assert ref_trim(sent, head, DEFAULT_WINDOW) == expected


def test_trim_overlap_takes_the_longest_repeat() -> None:
    # Both "b" and "a b" are repeated tails; the longer one wins.
    assert trim_overlap("a b a b", "a b a b c") == 7
    assert trim_overlap("x a b", "a b c") == 3


def test_trim_overlap_window() -> None:
    sent = "alpha beta gamma"
    assert trim_overlap(sent, "beta gamma delta", window=10) == 10
    assert trim_overlap(sent, "beta gamma delta", window=9) == 0  # "beta" starts 10 back
    assert trim_overlap(sent, "gamma delta", window=9) == 5
    assert trim_overlap(sent, "gamma delta", window=0) == 0


# -- Stitcher examples ---------------------------------------------------------


def test_first_segment_passes_through() -> None:
    r = Recorder()
    assert r.segment("m1", ["Hel", "lo", " world"]) == "Hello world"
    assert r.returns == ["Hel", "lo", " world"]
    assert r.st.spans == [Span("m1", 0, 11)]
    assert r.st.overlap_trimmed == 0
    assert r.st.trims == [0]


def test_no_overlap_first_delta_emitted_immediately() -> None:
    r = Recorder()
    r.segment("m1", [SENT[:30]], broken=True)
    r.st.start("m2")
    assert r.feed(SENT[30:40]) == SENT[30:40]
    assert not r.st.deciding
    assert r.feed(SENT[40:]) == SENT[40:]
    assert r.st.finish() == ""
    assert r.st.text == SENT
    assert r.st.spans == [Span("m1", 0, 30), Span("m2", 30, len(SENT))]
    assert r.st.last_trim == 0


@pytest.mark.parametrize("words", [1, 3, 10])
def test_exact_word_overlap_in_one_chunk(words: int) -> None:
    sent = "one two three four five six seven eight nine ten eleven"
    rest = " twelve thirteen"
    tail = " ".join(sent.split()[-words:])
    r = Recorder()
    r.segment("m1", [sent], broken=True)
    r.st.start("m2")
    assert r.feed(tail + rest) == rest  # decided at once, minus the overlap
    assert r.st.finish() == ""
    assert r.st.text == sent + rest
    assert r.st.last_trim == len(tail)
    assert r.st.overlap_trimmed == len(tail)
    assert r.st.spans == [Span("m1", 0, len(sent)), Span("m2", len(sent), len(sent + rest))]


def test_cut_mid_word() -> None:
    r = Recorder()
    r.segment("m1", ["I said hel"], broken=True)
    assert r.segment("m2", ["hello", " world"]) == "lo world"
    assert r.st.text == "I said hello world"
    assert r.st.last_trim == 3


def test_cut_mid_word_without_repeat() -> None:
    r = Recorder()
    r.segment("m1", ["I said hel"], broken=True)
    r.st.start("m2")
    assert r.feed("lo world") == "lo world"
    assert r.st.text == "I said hello world"


def test_overlap_split_into_one_char_chunks() -> None:
    sent = "the quick brown fox"
    cont = "brown fox jumps over"
    r = Recorder()
    r.segment("m1", chars(sent), broken=True)
    r.st.start("m2")
    outs: list[str] = []
    for c in cont[:9]:
        assert r.st.deciding  # "brown fox" could still be (part of) a repeat
        outs.append(r.feed(c))
    assert outs == [""] * 9
    assert not r.st.deciding  # decided the moment "brown fox" completed
    outs = [r.feed(c) for c in cont[9:]]
    assert outs == list(" jumps over")
    assert r.st.finish() == ""
    assert r.st.text == "the quick brown fox jumps over"
    assert r.st.last_trim == 9


def test_decided_as_soon_as_repeat_completes() -> None:
    r = Recorder()
    r.segment("m1", ["the quick brown fox"], broken=True)
    r.st.start("m2")
    assert r.feed("fo") == ""  # could still be "fox"
    assert r.feed("x") == ""  # "fox" repeated in full and no longer repeat possible
    assert not r.st.deciding
    assert r.feed(" jumps") == " jumps"
    r.st.finish()
    assert r.st.text == "the quick brown fox jumps"


def test_continuation_shorter_than_the_repeat() -> None:
    r = Recorder()
    r.segment("m1", ["the quick brown fox"], broken=True)
    # The model sent only "brown" (a prefix of the repeat "brown fox") and stopped.
    assert r.segment("m2", ["brown"]) == "brown"
    assert r.st.text == "the quick brown foxbrown"
    assert r.st.last_trim == 0


def test_continuation_is_exactly_the_repeat() -> None:
    r = Recorder()
    r.segment("m1", ["the quick brown fox"], broken=True)
    assert r.segment("m2", ["brown ", "fox"]) == ""
    assert r.st.text == "the quick brown fox"
    assert r.st.last_trim == 9
    assert r.st.spans == [Span("m1", 0, 19)]  # the empty segment has no span


def test_short_text_small_window() -> None:
    r = Recorder(window=8)
    r.segment("m1", ["alpha beta gamma"], broken=True)
    assert r.segment("m2", ["beta gamma delta"]) == "beta gamma delta"  # beyond window
    r2 = Recorder(window=8)
    r2.segment("m1", ["alpha beta gamma"], broken=True)
    assert r2.segment("m2", ["gamma delta"]) == " delta"


@pytest.mark.parametrize(
    ("sent", "deltas", "expected"),
    [
        ("quick brown fox", [" brown fox", " jumps"], "quick brown fox jumps"),
        ("quick brown fox", [" ", " ", "fox jumps"], "quick brown fox jumps"),
        ("quick brown fox", ["\n", "brown fox jumps"], "quick brown fox jumps"),
        ("quick brown fox", [" jumps"], "quick brown fox jumps"),
        ("quick brown fox ", ["jumps"], "quick brown fox jumps"),
        ("quick brown fox ", ["fox jumps"], "quick brown fox jumps"),
        ("quick brown fox ", [" jumps"], "quick brown fox  jumps"),  # kept: not a repeat
        ("quick brown fox\n", ["\nNext paragraph"], "quick brown fox\n\nNext paragraph"),
        ("quick brown fox", ["  ", " "], "quick brown fox   "),  # whitespace-only segment
    ],
)
def test_whitespace_variants(sent: str, deltas: list[str], expected: str) -> None:
    r = Recorder()
    r.segment("m1", [sent], broken=True)
    r.segment("m2", deltas)
    assert r.st.text == expected


def test_leading_whitespace_is_held_until_decided() -> None:
    r = Recorder()
    r.segment("m1", ["quick brown fox"], broken=True)
    r.st.start("m2")
    assert r.feed(" ") == ""
    assert r.st.held == " "
    assert r.feed("jumps") == " jumps"


def test_partial_overlap_then_divergence_loses_nothing() -> None:
    r = Recorder()
    r.segment("m1", ["the quick brown fox"], broken=True)
    r.st.start("m2")
    assert r.feed("bro") == ""
    assert r.feed("wn ") == ""
    assert r.feed("f") == ""
    assert r.feed("ur") == "brown fur"  # diverged from "brown fox": nothing trimmed
    assert r.st.finish() == ""
    assert r.st.text == "the quick brown foxbrown fur"
    assert r.st.last_trim == 0


def test_divergence_after_a_shorter_full_repeat() -> None:
    # "a b" is repeated in full, then the head diverges from the longer "a b a b".
    r = Recorder()
    r.segment("m1", ["x a b a b"], broken=True)
    r.st.start("m2")
    assert r.feed("a b") == ""  # "a b a b" still possible
    assert r.feed(" c") == " c"  # longer candidate died; "a b" was the repeat
    assert r.st.last_trim == 3
    assert r.st.text == "x a b a b c"


def test_empty_deltas_are_harmless() -> None:
    r = Recorder()
    r.segment("m1", ["", "the quick", "", " brown fox", ""], broken=True)
    r.st.start("m2")
    assert r.feed("") == ""
    assert r.st.deciding
    assert r.feed("fox") == ""
    assert r.feed("") == ""
    assert r.feed(" jumps") == " jumps"
    assert r.feed("") == ""
    r.st.finish()
    assert r.st.text == "the quick brown fox jumps"


def test_break_during_undecided_continuation_discards_held_text() -> None:
    r = Recorder()
    r.segment("m1", ["the quick brown fox"], broken=True)
    r.st.start("m2")
    assert r.feed("brown f") == ""
    r.st.abandon()  # held "brown f" is dropped: the client never saw it
    assert r.st.discarded == 7
    assert r.st.text == "the quick brown fox"
    assert r.st.spans == [Span("m1", 0, 19)]
    # The next continuation is asked from what was sent, and repeats "fox".
    assert r.segment("m3", ["fox", " jumps"]) == " jumps"
    assert r.st.text == "the quick brown fox jumps"
    assert r.st.spans == [Span("m1", 0, 19), Span("m3", 19, 25)]
    assert r.st.trims == [0, 0, 3]
    assert r.st.overlap_trimmed == 3


def test_multiple_continuations_in_a_row() -> None:
    r = Recorder()
    r.segment("m1", ["one two th"], broken=True)
    r.segment("m2", ["three four", " fi"], broken=True)  # decided, then broke
    r.segment("m1", ["five six seven"], broken=True)
    r.segment("m3", [" six seven eight", " nine"])
    assert r.st.text == "one two three four five six seven eight nine"
    assert r.st.spans == [
        Span("m1", 0, 10),
        Span("m2", 10, 21),
        Span("m1", 21, 33),
        Span("m3", 33, 44),
    ]
    assert r.st.trims == [0, 2, 2, 10]
    assert r.st.overlap_trimmed == 14
    assert_spans_cover(r.st)


def test_empty_first_segment_then_full_answer() -> None:
    r = Recorder()
    r.segment("m1", [], broken=True)
    assert r.segment("m2", ["Hello", " world"]) == "Hello world"
    assert r.st.spans == [Span("m2", 0, 11)]


def test_spans_include_the_open_segment() -> None:
    st = Stitcher()
    st.start("m1")
    st.feed("abc")
    assert st.spans == [Span("m1", 0, 3)]
    assert st.model == "m1"
    st.finish()
    assert st.model is None
    assert len(st.spans[0]) == 3


def test_misuse_raises() -> None:
    st = Stitcher()
    with pytest.raises(RuntimeError):
        st.feed("x")
    with pytest.raises(RuntimeError):
        st.finish()
    with pytest.raises(RuntimeError):
        st.abandon()
    st.start("m1")
    with pytest.raises(RuntimeError):
        st.start("m2")
    with pytest.raises(ValueError, match="window"):
        Stitcher(window=-1)


def test_long_text_uses_only_the_window() -> None:
    words = [f"w{i}" for i in range(5000)]
    sent = " ".join(words)
    r = Recorder()
    r.segment("m1", [sent], broken=True)
    tail = " ".join(words[-20:])
    r.segment("m2", [tail[:7], tail[7:] + " end"])
    assert r.st.text == sent + " end"


# -- properties ----------------------------------------------------------------

# Texts whose every non-whitespace character is distinct: the original text is then
# the only correct stitch, with no ambiguity about what was repeated.
_UNIQUE = string.ascii_letters + string.digits + "".join(chr(c) for c in range(0x100, 0x180))
_SEPARATORS = [" ", " ", " ", "\n", "  ", "\n\n", " \t"]


@st.composite
def unique_texts(draw: st.DrawFn) -> str:
    letters = draw(st.lists(st.sampled_from(_UNIQUE), unique=True, min_size=1, max_size=80))
    out: list[str] = []
    i = 0
    while i < len(letters):
        size = draw(st.integers(1, 7))
        if out:
            out.append(draw(st.sampled_from(_SEPARATORS)))
        out.append("".join(letters[i : i + size]))
        i += size
    return "".join(out)


def chunked(data: st.DataObject, text: str) -> list[str]:
    """Split ``text`` at random points, sometimes with empty deltas."""
    if not text:
        return data.draw(st.lists(st.just(""), max_size=2))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def word_starts(text: str) -> list[int]:
    return [
        p for p in range(len(text)) if (p == 0 or text[p - 1].isspace()) and not text[p].isspace()
    ]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), text=unique_texts())
def test_property_stitch_restores_the_answer(data: st.DataObject, text: str) -> None:
    cut = data.draw(st.integers(0, len(text)), label="cut")
    sent, rest = text[:cut], text[cut:]
    starts = word_starts(sent)
    n = data.draw(st.integers(0, min(5, len(starts))), label="overlap words")
    p = starts[-n] if n else cut
    lead = data.draw(st.sampled_from(["", "", " ", "\n"]), label="lead") if n else ""
    window = data.draw(st.sampled_from([DEFAULT_WINDOW, DEFAULT_WINDOW, 0, 5, 20]), label="w")
    head = lead + sent[p:]
    cont = head + rest

    r = Recorder(window)
    r.segment("m1", chunked(data, sent), broken=data.draw(st.booleans(), label="broke"))
    r.segment("m2", chunked(data, cont))

    repeated = n > 0 and p >= len(sent) - window
    expected = text if n == 0 or repeated else sent + cont
    assert r.st.text == expected
    assert r.st.last_trim == (len(head) if repeated else 0)
    assert r.st.overlap_trimmed == r.st.last_trim
    assert_spans_cover(r.st)
    models = (["m1"] if sent else []) + (["m2"] if len(expected) > len(sent) else [])
    assert [s.model for s in r.st.spans] == models


_VOCAB = ["a", "b", "ab", "ba", "the", "then", "he", "hen", "x"]
_SPACES = [" ", " ", " ", "\n", "  "]


@st.composite
def repetitive_texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(_VOCAB), max_size=12))
    seps = [draw(st.sampled_from(_SPACES)) for _ in words]
    text = "".join(s + w for s, w in zip(seps, words, strict=True))
    return text[draw(st.integers(0, 1)) :]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), sent=repetitive_texts(), more=repetitive_texts())
def test_property_stitcher_matches_rule_and_decides_early(
    data: st.DataObject, sent: str, more: str
) -> None:
    """On ambiguous texts: the result is exactly the rule applied to the whole
    continuation, emission only grows, and text is held only while a longer repeat is
    still possible."""
    window = data.draw(st.sampled_from([DEFAULT_WINDOW, 3, 10]), label="window")
    # Often start the continuation with a tail of the sent text.
    tail_from = data.draw(st.integers(0, len(sent)), label="tail")
    cont = data.draw(st.sampled_from(["", " ", "\n"]), label="lead") + sent[tail_from:] + more
    assert trim_overlap(sent, cont, window) == ref_trim(sent, cont, window)

    r = Recorder(window)
    r.segment("m1", [sent], broken=True)
    r.st.start("m2")
    lo = max(0, len(sent) - window)
    candidates = [sent[p:] for p in word_starts(sent) if p >= lo]
    for delta in chunked(data, cont):
        r.feed(delta)
        held = r.st.held
        if held:
            body = held.lstrip()
            assert not body or any(c.startswith(body) and c != body for c in candidates)
    r.st.finish()
    trim = ref_trim(sent, cont, window)
    assert r.st.text == sent + cont[trim:]
    assert r.st.last_trim == trim


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    sent=st.text(alphabet=string.ascii_lowercase + " \n", max_size=60),
    first=st.sampled_from(string.digits + string.ascii_uppercase),
    rest=st.text(alphabet=string.ascii_lowercase + " \n", max_size=30),
    lead=st.sampled_from(["", " ", "\n", "  "]),
)
def test_property_no_overlap_passes_through(
    data: st.DataObject, sent: str, first: str, rest: str, lead: str
) -> None:
    """A head that matches no tail: stitched == sent + continuation, and the delta
    bringing the first non-whitespace character is emitted at once."""
    cont = lead + first + rest
    r = Recorder()
    r.segment("m1", chunked(data, sent), broken=True)
    r.st.start("m2")
    seen = ""
    for delta in chunked(data, cont):
        out = r.feed(delta)
        seen += delta
        if seen.strip():
            assert r.st.held == ""
            assert r.st.text == sent + seen
        else:
            assert out in ("", delta)
    r.st.finish()
    assert r.st.text == sent + cont
    assert r.st.overlap_trimmed == 0
