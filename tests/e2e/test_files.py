"""Files, images, PDFs, folders and web pages through the tools: the real server over
stdio with a real MCP client, the real google-genai SDK against the emulator, and what
the emulator received (its request log and Files API) checked part by part."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from gemini_failover.emulator import Emulator, EmulatorServer
from tests.e2e.conftest import FALLBACK, PRIMARY, assert_clear_error, fast_env, held
from tests.e2e.test_stdio import params

#: Media over this many bytes go through the Files API (set low so a small PDF does).
INLINE_MAX = 4096


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\0" + b"\x80" * (3 * width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pdf(pages: int, pad: int = 0) -> bytes:
    objs = [b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"]
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages)).encode()
    objs.append(b"2 0 obj << /Type /Pages /Kids [" + kids + b"] /Count %d >> endobj\n" % pages)
    objs += [b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n" % (3 + i) for i in range(pages)]
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"".join(objs) + b"%" * pad + b"\n%%EOF\n"


def text_of(result: CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def user_parts(emulator: Emulator, start: int) -> list[dict[str, Any]]:
    """The parts of the last generate request logged after ``start``."""
    records = [r for r in emulator.requests[start:] if r.action in ("generate", "stream")]
    assert records, "no generate request reached the emulator"
    return [p for p in records[-1].parts if p.get("role") == "user"]


def workspace(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "work"
    (root / "proj" / "src").mkdir(parents=True)
    (root / "proj" / "src" / "main.py").write_text("print('hello')\n")
    (root / "proj" / "README.md").write_text("# Project\n")
    (root / "proj" / ".hidden").write_text("secret\n")
    (root / "proj" / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    (root / "notes.txt").write_text("meeting at noon\n")
    (root / "shot.png").write_bytes(png())
    (root / "small.pdf").write_bytes(pdf(2))
    (root / "big.pdf").write_bytes(pdf(3, pad=INLINE_MAX * 3))
    (root / "empty").mkdir()
    (root / "tool.exe").write_bytes(b"MZ\x90\x00" + b"\x00" * 64)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read\n")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    return {"root": root, "outside": outside}


async def test_files_images_pdfs_folders_and_urls_over_stdio(
    emulator_server: EmulatorServer, emulator: Emulator, tmp_path: Path
) -> None:
    paths = workspace(tmp_path)
    root = paths["root"]
    env = {
        **fast_env(emulator_server.base_url),
        "GEMINI_FAILOVER_ALLOWED_DIRS": str(root),
        "GEMINI_FAILOVER_INPUTS__INLINE_MAX_BYTES": str(INLINE_MAX),
        "GEMINI_FAILOVER_INPUTS__MAX_FILE_BYTES": str(1024 * 1024),
    }
    (root / "huge.png").write_bytes(png() + b"\0" * (1024 * 1024))
    async with held(Client(stdio_client(params("serve", env=env)))) as client:
        # a text file: a text part labelled with its path
        start = len(emulator.requests)
        result = await client.call_tool(
            "gemini_generate", {"prompt": "summarise", "files": [str(root / "notes.txt")]}
        )
        assert not result.is_error, text_of(result)
        parts = user_parts(emulator, start)
        assert [p["kind"] for p in parts] == ["text", "text"]  # the file, then the prompt
        files = (result.structured_content or {})["files"]
        assert [f["path"] for f in files["included"]] == [str(root / "notes.txt")]
        assert files["included"][0]["mime_type"] == "text/plain"
        assert "[files:" not in text_of(result)  # nothing left out: no extra line

        # a PNG and a PDF (file:// URI): inline data with their MIME types
        start = len(emulator.requests)
        uri = (root / "small.pdf").as_uri()
        result = await client.call_tool(
            "gemini_generate",
            {"prompt": "what is this", "files": [str(root / "shot.png"), uri]},
        )
        assert not result.is_error, text_of(result)
        media = [p for p in user_parts(emulator, start) if p["kind"] != "text"]
        assert [(p["kind"], p["mimeType"]) for p in media] == [
            ("inline_data", "image/png"),
            ("inline_data", "application/pdf"),
        ]
        assert media[0]["bytes"] == len(png())
        assert media[1]["bytes"] == len(pdf(2))
        assert "Received image/png" in text_of(result)

        # a folder: its text files in a stable order; hidden and binary files left out
        start = len(emulator.requests)
        result = await client.call_tool(
            "gemini_chat",
            {
                "turns": [
                    {"role": "user", "text": "hi"},
                    {"role": "model", "text": "hello"},
                    {"role": "user", "text": "review this project"},
                ],
                "files": [str(root / "proj")],
            },
        )
        assert not result.is_error, text_of(result)
        files = (result.structured_content or {})["files"]
        included = [f["path"] for f in files["included"]]
        assert included == [str(root / "proj" / "README.md"), str(root / "proj" / "src/main.py")]
        left = {f["path"].rsplit("/", 1)[-1]: f["reason"] for f in files["left_out"]}
        assert left.get("blob.bin") == "binary"
        assert ".hidden" in left
        assert "[files: 2 included," in text_of(result)  # one short line says so
        records = [r for r in emulator.requests[start:] if r.action in ("generate", "stream")]
        # the files went with the last user turn, before its text
        roles = [p["role"] for p in records[-1].parts]
        assert roles == ["user", "model", "user", "user", "user"]
        assert [p["kind"] for p in records[-1].parts][2:] == ["text", "text", "text"]

        # a large file: uploaded once through the Files API, reused by the second call
        for _ in range(2):
            start = len(emulator.requests)
            result = await client.call_tool(
                "gemini_generate", {"prompt": "read it", "files": [str(root / "big.pdf")]}
            )
            assert not result.is_error, text_of(result)
            media = [p for p in user_parts(emulator, start) if p["kind"] != "text"]
            assert [(p["kind"], p["mimeType"]) for p in media] == [("file_data", "application/pdf")]
            included = (result.structured_content or {})["files"]["included"]
            assert included[0]["uploaded"] is True
        uploaded = emulator.files
        assert len(uploaded) == 1, uploaded
        assert int(uploaded[0]["sizeBytes"]) == (root / "big.pdf").stat().st_size

        # a URL: the URL-context tool, never fetched by the server
        start = len(emulator.requests)
        result = await client.call_tool(
            "gemini_generate",
            {"prompt": "compare", "urls": ["https://example.com/a", "https://example.com/a"]},
        )
        assert not result.is_error, text_of(result)
        record = [r for r in emulator.requests[start:] if r.action == "generate"][-1]
        assert "urlContext" in record.tools
        assert "Read https://example.com/a" in text_of(result)
        assert (result.structured_content or {})["files"]["urls"] == ["https://example.com/a"]

        # count tokens with a file
        result = await client.call_tool(
            "gemini_count_tokens", {"text": "how long", "files": [str(root / "notes.txt")]}
        )
        assert not result.is_error, text_of(result)
        assert (result.structured_content or {})["total_tokens"] > 2

        # JSON with a file
        result = await client.call_tool(
            "gemini_generate_json",
            {
                "prompt": "extract",
                "schema": {"type": "object"},
                "files": [str(root / "shot.png")],
            },
        )
        assert not result.is_error, text_of(result)
        assert (result.structured_content or {})["files"]["included"][0]["mime_type"] == (
            "image/png"
        )

        # every bad input: a clear error naming the argument and the path, before any
        # upstream call
        bad: list[tuple[str, dict[str, Any], str]] = [
            ("gemini_generate", {"files": [str(paths["outside"] / "secret.txt")]}, "outside"),
            ("gemini_generate", {"files": [str(root / "link.txt")]}, "outside"),
            ("gemini_generate", {"files": [str(root / "missing.txt")]}, "does not exist"),
            ("gemini_generate", {"files": [str(root / "empty")]}, "no readable text files"),
            ("gemini_generate", {"files": [str(root / "tool.exe")]}, "binary file"),
            ("gemini_generate", {"files": [str(root / "huge.png")]}, "(max_file_bytes)"),
            ("gemini_generate", {"files": ["relative/path.txt"]}, "not an absolute path"),
            ("gemini_generate", {"files": [str(root / "notes.txt")] * 501}, "at most"),
            ("gemini_generate", {"urls": ["ftp://example.com/x"]}, "not an http(s) URL"),
            ("gemini_generate", {"urls": ["https://user:pw@example.com/"]}, "credentials"),
            ("gemini_generate", {"urls": ["https:///nohost"]}, "names no host"),
            ("gemini_chat", {"files": [str(paths["outside"])]}, "outside"),
            ("gemini_count_tokens", {"files": [str(root / "missing.txt")]}, "does not exist"),
        ]
        before = len(emulator.requests)
        for tool, arguments, expected in bad:
            base: dict[str, Any] = (
                {"turns": [{"role": "user", "text": "x"}]}
                if tool == "gemini_chat"
                else {"text": "x"}
                if tool == "gemini_count_tokens"
                else {"prompt": "x"}
            )
            result = await client.call_tool(tool, {**base, **arguments})
            message = assert_clear_error(result, tool)
            assert expected in message, message
            key = next(iter(arguments))
            assert message.startswith(f"{key}") or f" {key}" in message, message
            assert "pw" not in message
        assert len(emulator.requests) == before  # nothing went upstream
        assert len(emulator.files) == 1  # nothing half-uploaded

        health = json.loads(text_of(await client.call_tool("gemini_health", {})))
        assert health["files"]["roots"] == [str(root.resolve())]
        assert health["files"]["source"] == "allowed_dirs"


@pytest.mark.filterwarnings("ignore:The roots capability is deprecated")
async def test_client_roots_restrict_reading_and_image_input_routing(
    emulator_server: EmulatorServer, emulator: Emulator, tmp_path: Path
) -> None:
    """The client's roots (roots/list) decide what is readable, intersected with
    GEMINI_FAILOVER_ALLOWED_DIRS; roots/list_changed makes the server ask again. A model
    without image input is skipped for an image, with the reason."""
    paths = workspace(tmp_path)
    root = paths["root"]
    emulator.configure(PRIMARY, {"input_modalities": ["text"]})
    declared = [root / "proj"]

    async def list_roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(
            roots=[types.Root(uri=d.as_uri(), name=d.name) for d in declared]
        )

    env = {
        **fast_env(emulator_server.base_url),
        "GEMINI_FAILOVER_ALLOWED_DIRS": os.pathsep.join([str(root), str(paths["outside"])]),
        f"GEMINI_FAILOVER_MODEL_OVERRIDES__{PRIMARY.upper()}__INPUT_MODALITIES": '["text"]',
    }
    transport = stdio_client(params("serve", env=env))
    async with held(Client(transport, list_roots_callback=list_roots)) as client:
        # inside the client's root: readable
        result = await client.call_tool(
            "gemini_generate", {"prompt": "x", "files": [str(root / "proj" / "README.md")]}
        )
        assert not result.is_error, text_of(result)
        # allowed by the operator but not a client root: refused
        result = await client.call_tool(
            "gemini_generate", {"prompt": "x", "files": [str(root / "notes.txt")]}
        )
        assert "outside the allowed folders" in assert_clear_error(result, "gemini_generate")
        # the client widens its roots and says so: the server asks again
        declared.append(root)
        await client.session.send_roots_list_changed()
        start = len(emulator.requests)
        result = await client.call_tool(
            "gemini_generate", {"prompt": "x", "files": [str(root / "shot.png")]}
        )
        assert not result.is_error, text_of(result)
        out = result.structured_content or {}
        assert out["served_by"] == FALLBACK
        assert {"model": PRIMARY, "reason": "capability: no image input"} in out["skipped"]
        assert all(r.model != PRIMARY for r in emulator.requests[start:])
        # a client root beyond the operator's folders grants nothing
        declared[:] = [tmp_path]
        await client.session.send_roots_list_changed()
        result = await client.call_tool(
            "gemini_generate",
            {"prompt": "x", "files": [str(tmp_path / "work" / "notes.txt")]},
        )
        assert not result.is_error, text_of(result)
        (tmp_path / "top.txt").write_text("in the client's root only\n")
        result = await client.call_tool(
            "gemini_generate", {"prompt": "x", "files": [str(tmp_path / "top.txt")]}
        )
        assert "outside the allowed folders" in assert_clear_error(result, "gemini_generate")
        health = json.loads(text_of(await client.call_tool("gemini_health", {})))
        assert health["files"]["source"] == "client_roots"
        profiles = {m["model"]: m["profile"] for m in health["models"]}
        assert profiles[PRIMARY]["input_modalities"] == ["text"]
        assert "image" in profiles[FALLBACK]["input_modalities"]
        assert sorted(health["files"]["roots"]) == sorted(
            [str(root.resolve()), str(paths["outside"].resolve())]
        )
