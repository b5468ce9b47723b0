"""The tools' files and urls: URL checks, roots intersection, the files report line,
input modalities and URL context in capability routing, and the settings."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from gemini_failover.config import ConfigError, ModelOverride, load_settings
from gemini_failover.inputs import InputError, Roots
from gemini_failover.protocol import GenerationRequest, Media, TextFile, Turn
from gemini_failover.resilience.capabilities import ModelProfile, Needs, misfit
from gemini_failover.tools.files import FileInputs, check_urls, current_roots, intersect
from gemini_failover.tools.models import FilesOutput, LeftOutCount
from gemini_failover.tools.render import files_line

# -- urls ---------------------------------------------------------------------------------


def test_urls_are_kept_in_order_without_duplicates() -> None:
    urls = ["https://a.example/x", "http://b.example:8080/y?q=1", "https://a.example/x"]
    assert check_urls(urls) == ("https://a.example/x", "http://b.example:8080/y?q=1")
    assert check_urls(None) == ()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/file", "not an http(s) URL"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("https://", "names no host"),
        ("https://example.com/a b", "spaces or control characters"),
        ("https://example.com:http/", "not a valid URL"),
        ("https://" + "a" * 3000 + ".example", "characters; at most"),
    ],
)
def test_bad_urls_are_refused_naming_the_argument(url: str, problem: str) -> None:
    with pytest.raises(ToolError) as caught:
        check_urls(["https://ok.example", url])
    message = str(caught.value)
    assert message.startswith("urls[1]: ")
    assert problem in message


def test_a_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ToolError) as caught:
        check_urls(["https://alice:hunter2@example.com/private"])
    message = str(caught.value)
    assert "credentials" in message
    assert "hunter2" not in message
    assert "alice" not in message


def test_too_many_urls() -> None:
    with pytest.raises(ToolError, match="at most 20"):
        check_urls([f"https://example.com/{i}" for i in range(21)])


# -- roots ----------------------------------------------------------------------------------


def test_client_roots_are_intersected_with_the_allowed_dirs(tmp_path: Path) -> None:
    for d in ("a/inner", "b", "c", "abc"):
        (tmp_path / d).mkdir(parents=True)
    allowed = Roots([tmp_path / "a", tmp_path / "b"])
    client = Roots([tmp_path / "a" / "inner", tmp_path, tmp_path / "c", tmp_path / "abc"])
    got = intersect(client, allowed)
    # a narrower client root stays; a wider one is cut down to the allowed dirs; a
    # client root beside them (or sharing a prefix: "abc" vs "a") adds nothing
    assert sorted(got.dirs) == sorted(
        os.path.realpath(p) for p in (tmp_path / "a" / "inner", tmp_path / "a", tmp_path / "b")
    )
    assert not intersect(Roots([tmp_path / "c"]), allowed)


def test_allowed_dirs_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEMINI_FAILOVER_ALLOWED_DIRS", f"{tmp_path}{os.pathsep} /srv ")
    settings = load_settings(api_key="k")
    assert settings.allowed_dirs == [str(tmp_path), "/srv"]
    monkeypatch.setenv("GEMINI_FAILOVER_ALLOWED_DIRS", "relative/dir")
    with pytest.raises(ConfigError, match="allowed_dirs"):
        load_settings(api_key="k")


# -- the files line -------------------------------------------------------------------------


def test_one_short_line_only_when_files_were_left_out() -> None:
    assert files_line(None) is None
    assert files_line(FilesOutput()) is None
    out = FilesOutput(
        left_out_counts=[LeftOutCount(reason="binary", count=2), LeftOutCount(reason="x", count=1)]
    )
    line = files_line(out)
    assert line is not None
    assert "\n" not in line
    assert "0 included, 3 left out (binary 2, x 1)" in line


# -- capability routing for inputs -----------------------------------------------------------


def _image(tokens: int = 258) -> Media:
    return Media("/r/shot.png", "image/png", 10, "0" * 64, data=b"x" * 10, tokens=tokens)


def test_a_model_without_image_input_cannot_serve_an_image() -> None:
    request = GenerationRequest(contents=(Turn("user", "what is this", (_image(),)),))
    needs = Needs.of(request)
    assert needs.modalities == frozenset({"image"})
    text_only = ModelProfile.build("m", None, ModelOverride(input_modalities=["text"]))
    assert misfit(text_only, needs) == "no image input"
    assert misfit(ModelProfile.build("m", None, None), needs) is None


def test_url_context_support_defaults_and_overrides() -> None:
    needs = Needs.of(GenerationRequest.from_prompt("compare", urls=("https://a.example",)))
    assert needs.url_context
    assert misfit(ModelProfile.build("gemini-2.5-pro", None, None), needs) is None
    assert misfit(ModelProfile.build("gemini-1.5-pro", None, None), needs) == (
        "no URL context (urls)"
    )
    off = ModelProfile.build("gemini-2.5-pro", None, ModelOverride(url_context=False))
    assert misfit(off, needs) == "no URL context (urls)"


def test_file_tokens_count_towards_the_context_window() -> None:
    files = (TextFile("/r/a.py", "x" * 4000), _image(tokens=50_000))
    request = GenerationRequest(contents=(Turn("user", "review", files),))
    needs = Needs.of(request)
    assert needs.prompt_tokens >= 50_000 + 1000
    small = ModelProfile.build("m", None, ModelOverride(input_token_limit=32_768))
    reason = misfit(small, needs)
    assert reason is not None and reason.startswith("context window 32,768 tokens")


# -- the upload opener ----------------------------------------------------------------------


async def _read_all(inputs: FileInputs, media: Media) -> bytes:
    return b"".join([chunk async for chunk in inputs.opener(media)])


async def test_the_upload_opener_rereads_through_the_current_roots(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    data = b"%PDF-1.7\n" + b"x" * 1000
    (tmp_path / "in" / "a.pdf").write_bytes(data)
    (tmp_path / "out" / "b.pdf").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    inputs = FileInputs(allowed_dirs=[str(tmp_path)])

    def media(path: Path) -> Media:
        return Media(str(path), "application/pdf", len(data), digest, path=str(path))

    token = current_roots.set(Roots([tmp_path / "in"]))
    try:
        assert await _read_all(inputs, media(tmp_path / "in" / "a.pdf")) == data
        # allowed by the operator, but not by the roots the request was checked under
        with pytest.raises(InputError, match="outside the allowed folders"):
            await _read_all(inputs, media(tmp_path / "out" / "b.pdf"))
        # changed since it was checked: never handed out whole
        (tmp_path / "in" / "a.pdf").write_bytes(data[:-1] + b"y")
        with pytest.raises(InputError, match="changed since it was checked"):
            await _read_all(inputs, media(tmp_path / "in" / "a.pdf"))
    finally:
        current_roots.reset(token)
