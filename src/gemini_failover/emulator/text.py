"""Deterministic text, token counts and embeddings of the emulated model.

Everything here is a pure function of its arguments (no process-dependent hashing), so a
test, a benchmark and the emulator all agree on what "the model" answers to a prompt.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import struct
from functools import lru_cache

__all__ = [
    "VOCABULARY",
    "count_tokens",
    "embedding_for",
    "expected_text",
    "overlap_start",
    "stream_chunks_for",
]

_WORDS = """
    able about above across active actual adapter address advance agent align allow
    amber anchor answer append archive argue arrive aspect assign atlas audit autumn
    balance banner basin beacon before begin below beyond binary blend border bounded
    branch breeze bridge bright buffer button cabin cable canvas carbon careful cascade
    castle center certain channel circle clever client climate closer cluster coastal
    column common compact compass concise context copper corner cosmic counter crystal
    current custom cycle dawn decide default delta demand desert design detail direct
    distant domain double draft driven during early easel echo effort elastic element
    ember enable energy engine entire equal even event exact expand fabric factor
    fallback family field filter final finer firm first flexible focus follow forest
    formal frame frequent friendly future galaxy garden gentle global golden gradual
    graph gravity harbor harvest healthy helpful hidden highland honest horizon humble
    ideal image impact index inner input island journal jungle keeper kernel kind
    ladder lantern large latent layer leader level light linear little local logic
    lunar machine manner marble margin market meadow memory method middle mirror model
    modern module moment motion mountain native nearby network neutral noble normal
    north number ocean offset open orbit order origin outer output packet palace panel
    parallel partial patient pattern pebble people perfect phrase planet plenty pocket
    polite portal prairie precise primary prism proper public pulse quiet random rapid
    reason record region relay remote repeat resilient retry ripple river robust rocket
    rough route safety sample scale schema season second secure select signal silent
    silver simple single sketch smooth socket solid source spark spiral stable steady
    stone stream strong subtle summit sunny system tablet target tender thread timber
    token touch tower trail travel tunnel unique update useful valley value vector
    velvet version violet visual vivid volume warm window winter wisdom yellow zenith
    """
_VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())
#: The words answers are made of.
VOCABULARY = _VOCABULARY

_WORD_RE = re.compile(r"\S+")


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


#: No word appears twice within this many consecutive words of an answer, so a run of
#: words repeated across a stream's cut point (an overlap) is never ambiguous.
DISTINCT_WINDOW = 8


@lru_cache(maxsize=8192)
def expected_text(first_user_turn: str) -> str:
    """The answer the emulated model gives to a conversation whose first user turn is this.

    Several sentences, 40 to 80 words in all, drawn from a fixed vocabulary with a
    generator seeded by a hash of the text: the same prompt always gets the same answer,
    in every process, and different prompts almost always get different answers. No word
    repeats within DISTINCT_WINDOW consecutive words.
    """
    rng = random.Random(_seed(first_user_turn))
    remaining = rng.randint(40, 80)
    recent: list[str] = []
    sentences: list[str] = []
    while remaining > 0:
        size = rng.randint(6, 12)
        if remaining - size < 4:
            size = remaining
        words: list[str] = []
        for _ in range(size):
            word = rng.choice(_VOCABULARY)
            while word in recent:
                word = rng.choice(_VOCABULARY)
            recent.append(word)
            if len(recent) >= DISTINCT_WINDOW:
                del recent[0]
            words.append(word)
        words[0] = words[0].capitalize()
        sentences.append(" ".join(words) + ".")
        remaining -= size
    return " ".join(sentences)


def stream_chunks_for(text: str, n: int) -> list[str]:
    """Split text into at most n chunks on word boundaries, with "".join(chunks) == text.

    Each chunk holds whole words with the whitespace that follows them; whitespace before
    the first word stays on the first chunk. Words are spread as evenly as possible. A text
    with fewer words than n gives one chunk per word; an empty text gives no chunks.
    """
    if not text:
        return []
    starts = [m.start() for m in _WORD_RE.finditer(text)]
    words = len(starts)
    parts = max(1, min(n, words))
    if parts == 1:
        return [text]
    cuts = [0] + [starts[(i * words) // parts] for i in range(1, parts)] + [len(text)]
    return [text[cuts[i] : cuts[i + 1]] for i in range(parts)]


def overlap_start(prefix: str, words: int) -> int:
    """Index in prefix where its last `words` whitespace-separated words begin.

    A prefix with fewer words than that gives the start of its first word (0 if it has
    none). words <= 0 gives len(prefix): no overlap.
    """
    if words <= 0:
        return len(prefix)
    starts = [m.start() for m in _WORD_RE.finditer(prefix)]
    if not starts:
        return 0
    return starts[max(0, len(starts) - words)]


def count_tokens(chars: int) -> int:
    """Tokens for a text of this many characters: max(1, ceil(chars / 4))."""
    return max(1, math.ceil(chars / 4))


@lru_cache(maxsize=4096)
def embedding_for(text: str, dim: int) -> tuple[float, ...]:
    """A deterministic unit vector of dimension dim derived from the text."""
    raw = hashlib.shake_256(text.encode("utf-8")).digest(dim * 2)
    values = [(v - 32767.5) / 32767.5 for v in struct.unpack(f"<{dim}H", raw)]
    norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)
