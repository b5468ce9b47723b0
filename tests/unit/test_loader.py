"""The loader: text and media files into attachments, directories within budgets and
caps, the report, and the verified re-open for upload. Real files in tmp dirs."""

from __future__ import annotations

import hashlib
import io
import math
import os
import struct
import wave
from pathlib import Path

import pytest

from gemini_failover.inputs import loader
from gemini_failover.inputs.loader import Loaded, load_files, load_files_sync
from gemini_failover.inputs.media import PdfPages
from gemini_failover.inputs.sandbox import InputError, Roots
from gemini_failover.inputs.settings import InputSettings
from gemini_failover.inputs.upload import iter_media, open_media
from gemini_failover.protocol import Media, TextFile


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def mvhd(seconds: int, version: int = 0) -> bytes:
    if version == 1:
        body = bytes([1, 0, 0, 0]) + b"\0" * 16 + struct.pack(">IQ", 600, seconds * 600)
    else:
        body = b"\0" * 12 + struct.pack(">II", 1000, seconds * 1000)
    return box(b"mvhd", body + b"\0" * 80)


def bmff(brand: bytes, seconds: int = 5, version: int = 0) -> bytes:
    ftyp = box(b"ftyp", brand + b"\0\0\0\0" + brand + b"isom")
    return ftyp + box(b"mdat", b"\0" * 100) + box(b"moov", mvhd(seconds, version))


def wav(seconds: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\1" * 8000 * seconds)
    return out.getvalue()


def flac(seconds: int) -> bytes:
    rate = 44100
    packed = (rate << 44) | (1 << 41) | (15 << 36) | (rate * seconds)
    streaminfo = b"\0" * 10 + packed.to_bytes(8, "big") + b"\0" * 16
    return b"fLaC" + b"\x80\x00\x00\x22" + streaminfo + b"\0" * 64


def pdf(pages: int, pad: int = 0) -> bytes:
    objs = [b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"]
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages)).encode()
    objs.append(b"2 0 obj << /Type /Pages /Kids [" + kids + b"] /Count %d >> endobj\n" % pages)
    objs += [b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n" % (3 + i) for i in range(pages)]
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"".join(objs) + b"%" * pad + b"\n%%EOF\n"


SAMPLES: list[tuple[str, bytes, str]] = [
    ("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/png"),
    ("a.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 32, "image/jpeg"),
    ("a.webp", b"RIFF\x24\0\0\0WEBPVP8 " + b"\0" * 24, "image/webp"),
    ("a.gif", b"GIF89a" + b"\0" * 32, "image/gif"),
    ("a.heic", box(b"ftyp", b"heic\0\0\0\0mif1heic"), "image/heic"),
    ("a.heif", box(b"ftyp", b"mif1\0\0\0\0mif1"), "image/heif"),
    ("a.pdf", pdf(3), "application/pdf"),
    ("a.wav", wav(2), "audio/wav"),
    ("a.mp3", b"ID3\x04\0\0\0\0\0\0" + b"\xff\xfb\x90\x00" * 100, "audio/mp3"),
    ("a.aiff", b"FORM\0\0\0\x40AIFFCOMM" + b"\0" * 56, "audio/aiff"),
    ("a.aac", b"\xff\xf1\x50\x80" * 100, "audio/aac"),
    ("a.ogg", b"OggS\0\x02" + b"\0" * 100, "audio/ogg"),
    ("a.flac", flac(3), "audio/flac"),
    ("a.mp4", bmff(b"isom"), "video/mp4"),
    ("a.mov", bmff(b"qt  ", version=1), "video/mov"),
    ("a.mpg", b"\x00\x00\x01\xba" + b"\0" * 100, "video/mpeg"),
    ("a.avi", b"RIFF\0\0\0\0AVI LIST" + b"\0" * 100, "video/avi"),
    ("a.flv", b"FLV\x01\x05" + b"\0" * 100, "video/x-flv"),
    ("a.webm", b"\x1a\x45\xdf\xa3" + b"\0" * 100, "video/webm"),
    ("a.wmv", bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + b"\0" * 100, "video/wmv"),
    ("a.3gp", bmff(b"3gp4"), "video/3gpp"),
    ("noext", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/png"),  # content decides
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "root"
    d.mkdir()
    return d


def load(root: Path, *paths: Path | str, **settings: int) -> Loaded:
    return load_files_sync([str(p) for p in paths], Roots([root]), InputSettings(**settings))


def error(root: Path, *paths: Path | str, **settings: int) -> InputError:
    with pytest.raises(InputError) as info:
        load(root, *paths, **settings)
    return info.value


# -- single files ------------------------------------------------------------------------


def test_text_file_is_labelled_with_its_path(root: Path) -> None:
    f = root / "notes café.md"
    f.write_text("\ufeff# Title\nbody é\n", encoding="utf-8")
    got = load(root, f)
    assert got.attachments == (TextFile(str(f), "# Title\nbody é\n"),)
    (item,) = got.report.included
    assert (item.kind, item.label, item.argument, item.inline) == ("text", str(f), "files[0]", True)
    assert item.tokens == math.ceil(len("# Title\nbody é\n") / 4)
    uri = load(root, "file://" + str(f).replace(" ", "%20").replace("é", "%C3%A9"))
    assert uri.attachments[0].label == str(f)  # decoded


@pytest.mark.parametrize(("name", "content", "mime"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_every_media_type_is_sniffed_with_size_and_digest(
    root: Path, name: str, content: bytes, mime: str
) -> None:
    (root / name).write_bytes(content)
    got = load(root, root / name)
    (media,) = got.attachments
    assert isinstance(media, Media)
    assert media.mime_type == mime
    assert media.size == len(content)
    assert media.sha256 == hashlib.sha256(content).hexdigest()
    assert media.data == content and media.path is None
    assert got.report.included[0].tokens > 0


@pytest.mark.parametrize(
    ("name", "content", "tokens", "exact"),
    [
        ("a.png", SAMPLES[0][1], 258, True),
        ("a.pdf", pdf(3), 3 * 258, True),
        ("a.wav", wav(2), 2 * 32, True),
        ("a.flac", flac(3), 3 * 32, True),
        ("a.mp4", bmff(b"isom", seconds=5), 5 * 263, True),
        ("a.mov", bmff(b"qt  ", seconds=4, version=1), 4 * 263, True),
        ("a.ogg", b"OggS" + b"\0" * 31_996, 64, False),  # 32 kB at an assumed 16 kB/s
        ("b.pdf", b"%PDF-1.7\n" + b"x" * 120_000, 3 * 258, False),  # 50 kB a page assumed
    ],
)
def test_token_estimates_as_gemini_counts(
    root: Path, name: str, content: bytes, tokens: int, exact: bool
) -> None:
    (root / name).write_bytes(content)
    item = load(root, root / name).report.included[0]
    assert (item.tokens, item.tokens_exact) == (tokens, exact)


def test_pdf_pages_are_counted_across_chunk_boundaries() -> None:
    data = pdf(7)
    for size in (1, 5, 31, 4096):
        counter = PdfPages()
        for i in range(0, len(data), size):
            counter.feed(data[i : i + size])
        assert counter.result() == 7


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "fake.png",
            b"\xff\xd8\xff\xe0" + b"\0" * 32,
            "says image/png but its content is image/jpeg",
        ),
        ("fake.png", b"just text", "not a recognised media type"),
        ("fake.pdf", b"\x89PNG\r\n\x1a\n", "application/pdf"),
        ("blob.bin", b"\x00\x01\x02binary", "binary file"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "binary file"),
    ],
)
def test_content_that_is_not_what_it_claims_is_an_error(
    root: Path, name: str, content: bytes, problem: str
) -> None:
    (root / name).write_bytes(content)
    e = error(root, root / name)
    assert problem in e.problem and e.path == str(root / name) and e.argument == "files[0]"


def test_a_container_family_member_keeps_its_extension(root: Path) -> None:
    (root / "clip.mp4").write_bytes(bmff(b"qt  "))  # QuickTime brand, named .mp4
    assert load(root, root / "clip.mp4").attachments[0].mime_type == "video/mp4"  # type: ignore[union-attr]


def test_errors_name_the_argument_index(root: Path, tmp_path: Path) -> None:
    (root / "ok.txt").write_text("ok")
    (tmp_path / "out.txt").write_text("no")
    e = error(root, root / "ok.txt", tmp_path / "out.txt")
    assert (e.argument, e.path) == ("files[1]", str(tmp_path / "out.txt"))
    assert "outside" in e.problem
    assert "does not exist" in error(root, root / "missing.txt").problem


# -- inline or upload, and caps ----------------------------------------------------------


def test_large_media_carries_its_path_not_its_data(root: Path) -> None:
    content = pdf(2, pad=5000)
    (root / "big.pdf").write_bytes(content)
    got = load(root, root / "big.pdf", inline_max_bytes=1000)
    (media,) = got.attachments
    assert isinstance(media, Media)
    assert media.data is None and media.path == os.path.realpath(root / "big.pdf")
    assert media.sha256 == hashlib.sha256(content).hexdigest()
    assert got.report.included[0].inline is False


def test_inline_total_sends_later_files_by_path(root: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        (root / name).write_bytes(b"\x89PNG\r\n\x1a\n" + name.encode() * 20)
    got = load(root, root / "a.png", root / "b.png", root / "c.png", inline_total_max_bytes=250)
    assert [m.data is not None for m in got.attachments if isinstance(m, Media)] == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("setting", "name", "content", "problem"),
    [
        ("max_file_bytes", "a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "max_file_bytes"),
        ("max_text_file_bytes", "a.txt", b"x" * 200, "max_text_file_bytes"),
        ("max_request_bytes", "a.txt", b"x" * 200, "max_request_bytes"),
    ],
)
def test_caps_refuse_a_named_file_before_reading_it(
    root: Path, setting: str, name: str, content: bytes, problem: str
) -> None:
    (root / name).write_bytes(content)
    caps = {setting: 100, "inline_max_bytes": 50}
    assert problem in error(root, root / name, **caps).problem


def test_too_many_files(root: Path) -> None:
    for i in range(3):
        (root / f"{i}.txt").write_text("x")
    names = [root / f"{i}.txt" for i in range(3)]
    assert "max_files" in error(root, *names, max_files=2).problem
    assert "max_files" in error(root, root / "0.txt", root / "1.txt", root, max_files=2).problem


# -- directories -------------------------------------------------------------------------


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "build").mkdir()
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]")
    (repo / ".gitignore").write_text("*.log\n!keep.log\nbuild/\n")
    (repo / "README.md").write_text("readme")
    (repo / "app.log").write_text("noise")
    (repo / "keep.log").write_text("kept")
    (repo / "build" / "out.txt").write_text("built")
    (repo / ".env").write_text("SECRET=1")
    (repo / "src" / "main.py").write_text("print('hi')")
    (repo / "src" / "data.bin").write_bytes(b"\0\1\2")
    (repo / "src" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    (repo / "src" / "link.py").symlink_to(repo / "src" / "main.py")
    (repo / "src" / "pkg" / ".gitignore").write_text("gen_*.py\n")
    (repo / "src" / "pkg" / "gen_x.py").write_text("generated")
    (repo / "src" / "pkg" / "mod.py").write_text("x = 1")
    os.mkfifo(repo / "src" / "pipe")
    return repo


def test_directory_expands_to_its_text_files_in_a_stable_order(root: Path) -> None:
    repo = make_repo(root)
    got = load(root, repo)
    labels = [a.label for a in got.attachments]
    assert labels == [
        f"{repo}/README.md",
        f"{repo}/keep.log",
        f"{repo}/src/main.py",
        f"{repo}/src/pkg/mod.py",
    ]
    reasons = {item.label.removeprefix(f"{repo}/"): item.reason for item in got.report.left_out}
    assert reasons == {
        ".env": "hidden",
        ".git": "hidden",
        ".gitignore": "hidden",
        "app.log": "ignored",
        "build": "ignored",
        "src/data.bin": "binary",
        "src/link.py": "symlink",
        "src/logo.png": "media",
        "src/pipe": "special",
        "src/pkg/.gitignore": "hidden",
        "src/pkg/gen_x.py": "ignored",
    }
    assert got.report.left_out_counts["hidden"] == 4
    assert got.report.tokens == sum(i.tokens for i in got.report.included)
    assert all(i.argument == "files[0]" for i in got.report.included)
    assert load(root, repo).attachments == got.attachments  # stable


def test_gitignore_files_above_a_named_folder_apply_up_to_the_root(
    root: Path, tmp_path: Path
) -> None:
    repo = make_repo(root)
    (repo / "src" / "debug.log").write_text("noise")
    (repo / "src" / "build").mkdir()
    (repo / "src" / "build" / "gen.txt").write_text("built")
    (repo / "src" / "secret_key.py").write_text("k")
    (root / ".gitignore").write_text("secret_*.py\n")
    (tmp_path / ".gitignore").write_text("*.py\n")  # above the root: never read
    got = load(root, repo / "src")
    assert [a.label for a in got.attachments] == [f"{repo}/src/main.py", f"{repo}/src/pkg/mod.py"]
    ignored = {i.label for i in got.report.left_out if i.reason == "ignored"}
    assert {f"{repo}/src/debug.log", f"{repo}/src/build", f"{repo}/src/secret_key.py"} <= ignored


def test_a_folder_symlink_to_outside_is_not_entered(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    d = root / "d"
    d.mkdir()
    (d / "ok.txt").write_text("ok")
    (d / "ext").symlink_to(outside)
    got = load(root, d)
    assert [a.label for a in got.attachments] == [f"{d}/ok.txt"]
    assert all("secret" not in a.text for a in got.attachments if isinstance(a, TextFile))
    assert got.report.left_out_counts == {"symlink": 1}


def test_explicit_files_come_first_and_duplicates_are_dropped(root: Path) -> None:
    repo = make_repo(root)
    got = load(root, repo, repo / "src" / "logo.png")
    assert got.attachments[0].label == f"{repo}/src/logo.png"
    twice = load(root, repo / "README.md", repo)
    assert [a.label for a in twice.attachments].count(f"{repo}/README.md") == 1
    assert twice.report.left_out_counts["duplicate"] == 1


def test_directory_token_budget_leaves_out_what_does_not_fit(root: Path) -> None:
    d = root / "d"
    d.mkdir()
    for name, chars in (("a.txt", 400), ("b.txt", 800), ("c.txt", 40)):
        (d / name).write_text("x" * chars)
    got = load(root, d, directory_token_budget=150)  # a: 100, b: 200, c: 10 tokens
    assert [a.label for a in got.attachments] == [f"{d}/a.txt", f"{d}/c.txt"]
    (left,) = got.report.left_out
    assert (left.label, left.reason) == (f"{d}/b.txt", "token_budget")
    # a file named explicitly is not held to the directory budget
    assert len(load(root, d / "b.txt", directory_token_budget=1).attachments) == 1


def test_directory_file_limit_and_request_size(root: Path) -> None:
    d = root / "d"
    d.mkdir()
    for i in range(5):
        (d / f"{i}.txt").write_text("y" * 10)
    got = load(root, d, max_files=3)
    assert len(got.attachments) == 3
    assert got.report.left_out[-1].reason == "file_limit"
    sized = load(root, d, max_request_bytes=25)
    assert len(sized.attachments) == 2
    assert sized.report.left_out[-1].reason == "request_size"


def test_directory_walk_is_bounded(root: Path) -> None:
    d = root / "d"
    (d / "a" / "b" / "c").mkdir(parents=True)
    (d / "a" / "b" / "c" / "deep.txt").write_text("deep")
    for i in range(10):
        (d / f"{i}.txt").write_text("z")
    walked = load(root, d, max_walk_entries=5)
    assert walked.report.walk_truncated
    assert len(walked.attachments) < 10
    assert walked.report.left_out_counts["walk_limit"] == 1
    deep = load(root, d, max_walk_depth=2)
    assert deep.report.left_out_counts["depth_limit"] == 1
    assert f"{d}/a/b/c/deep.txt" not in [a.label for a in deep.attachments]


def test_directory_with_nothing_readable_is_an_error(root: Path) -> None:
    d = root / "d"
    d.mkdir()
    assert "no readable text files" in error(root, d).problem
    (d / "x.bin").write_bytes(b"\0\0")
    (d / ".hidden").write_text("h")
    e = error(root, d)
    assert "binary: 1" in e.problem and "hidden: 1" in e.problem


def test_report_lists_a_bounded_number_of_left_out_files(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "MAX_REPORTED", 3)
    d = root / "d"
    d.mkdir()
    (d / "ok.txt").write_text("ok")
    for i in range(6):
        (d / f"{i}.bin").write_bytes(b"\0")
    got = load(root, d)
    assert len(got.report.left_out) == 3
    assert got.report.left_out_counts == {"binary": 6}


async def test_load_files_runs_off_the_event_loop(root: Path) -> None:
    (root / "a.txt").write_text("async")
    got = await load_files([str(root / "a.txt")], Roots([root]), InputSettings())
    assert got.attachments == (TextFile(str(root / "a.txt"), "async"),)


# -- re-opening a large file for upload ----------------------------------------------------


def big_media(root: Path, content: bytes) -> tuple[Path, Media]:
    path = root / "big.pdf"
    path.write_bytes(content)
    (media,) = load(root, path, inline_max_bytes=10).attachments
    assert isinstance(media, Media) and media.path is not None
    return path, media


def test_open_media_streams_the_checked_content(root: Path) -> None:
    content = pdf(3, pad=3000)
    _, media = big_media(root, content)
    with open_media(media, Roots([root])) as reader:
        assert reader.read() == content


def test_content_changed_in_place_is_refused_before_the_last_bytes(root: Path) -> None:
    content = pdf(3, pad=3000)
    path, media = big_media(root, content)
    path.write_bytes(content[:-1] + b"!")  # same size, other bytes
    with open_media(media, Roots([root])) as reader:
        assert reader.read(1000) == content[:1000]  # early chunks flow
        with pytest.raises(InputError, match="changed since it was checked"):
            reader.read(len(content))  # the final chunk never comes out


def test_a_grown_or_swapped_file_is_refused(root: Path, tmp_path: Path) -> None:
    content = pdf(2, pad=2000)
    path, media = big_media(root, content)
    with path.open("ab") as f:
        f.write(b"more")
    with pytest.raises(InputError, match="changed"):
        open_media(media, Roots([root]))
    path.unlink()
    (tmp_path / "other.pdf").write_bytes(content)
    path.symlink_to(tmp_path / "other.pdf")
    with pytest.raises(InputError, match="outside"):
        open_media(media, Roots([root]))


async def test_iter_media_yields_verified_chunks(root: Path) -> None:
    content = pdf(4, pad=10_000)
    _, media = big_media(root, content)
    chunks = [c async for c in iter_media(media, Roots([root]), chunk_size=4096)]
    assert b"".join(chunks) == content and len(chunks) > 1
