"""Reading files into a request: a 10 MB PDF and a 2,000-file directory through the
sandbox and the loader, against plain reads of the same bytes (same run, interleaved),
with peak memory.

    python -m bench.files [--runs 7]

Time is wall-clock for ``load_files_sync`` (the worker-thread body of ``load_files``);
memory is tracemalloc's peak of Python allocations during one load, traced in separate
runs so tracing does not slow the timed ones; the process peak RSS closes the table.

Time to first upstream byte: from the start of ``load_files`` to the moment the
in-process emulator starts receiving the first request of the call (the Files API
upload, or the generate request when the PDF goes inline or was uploaded before),
through a FailoverManager and the real SDK, with the server's sandboxed upload opener.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bench.common import Row, build_settings, median, ok, table
from gemini_failover.inputs import InputSettings, Roots, load_files, load_files_sync

MiB = 1024 * 1024


def make_pdf(path: Path, size: int) -> int:
    """A PDF of about ``size`` bytes: uncompressed pages of text (so pages are counted)."""
    pages = size // 5000
    body = [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"]
    body.append(b"2 0 obj << /Type /Pages /Count %d >> endobj\n" % pages)
    text = (b"BT /F1 12 Tf 72 712 Td (The quick brown fox.) Tj ET\n" * 96)[:4900]
    for i in range(pages):
        body.append(b"%d 0 obj << /Type /Page /Parent 2 0 R >> stream\n" % (3 + i))
        body.append(text + b"\nendstream endobj\n")
    body.append(b"%%EOF\n")
    path.write_bytes(b"".join(body))
    return pages


def make_tree(root: Path, files: int) -> None:
    """``files`` source-like files (~2 KB) in 40 packages, plus a .gitignore and noise."""
    line = "def handler(request):  # a line of ordinary code, 64 bytes long\n"
    for i in range(files):
        pkg = root / f"pkg{i % 40:02d}"
        pkg.mkdir(exist_ok=True)
        (pkg / f"module_{i:04d}.py").write_text(f"# module {i}\n" + line * 32)
    (root / ".gitignore").write_text("*.pyc\n__pycache__/\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"\0" * 100)


def plain_read_tree(root: Path) -> int:
    total = 0
    for top, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(names):
            if not name.startswith("."):
                total += len((Path(top) / name).read_text())
    return total


def plain_hash(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def timed(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Median seconds of each function, run in turn (rotating who goes first) so drift
    in the machine's load touches all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for r in range(runs):
        for k in range(len(fns)):
            i = (k + r) % len(fns)
            t0 = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
    return [median(t) for t in times]


def traced_peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def first_byte(pdf: Path, roots: Roots, runs: int) -> tuple[float, float, float]:
    """Median seconds to the first upstream byte for the PDF: uploaded (a fresh backend
    each run, so nothing is cached), uploaded before (cached), inline."""
    import asyncio

    from gemini_failover.emulator import Emulator, EmulatorServer
    from gemini_failover.gemini.backend import GeminiBackend
    from gemini_failover.observability.logging import configure_logging
    from gemini_failover.protocol import GenerationRequest, Turn
    from gemini_failover.resilience.manager import FailoverManager
    from gemini_failover.tools.files import FileInputs, current_roots

    configure_logging("warning")  # the uploader logs each upload; keep stdout a table
    upload = InputSettings()
    inline = InputSettings(inline_max_bytes=16 * MiB, inline_total_max_bytes=16 * MiB)
    emulator = Emulator()
    async with EmulatorServer(emulator) as server:
        settings = build_settings(server.base_url, ["pro"], {}, total_timeout=60.0)
        inputs = FileInputs(upload, [str(roots.dirs[0])])
        current_roots.set(roots)

        async def once(manager: FailoverManager, s: InputSettings) -> float:
            seen = len(emulator.requests)
            t0 = time.time()
            loaded = await load_files([str(pdf)], roots, s)
            turn = Turn("user", "summarise", loaded.attachments)
            await manager.generate(GenerationRequest(contents=(turn,)))
            return min(r.time for r in emulator.requests[seen:]) - t0

        samples: dict[str, list[float]] = {"fresh": [], "cached": [], "inline": []}
        for _ in range(runs):
            backend = GeminiBackend(api_key="bench", base_url=server.base_url, opener=inputs.opener)
            manager = FailoverManager(settings, backend)
            await manager.start()
            try:
                samples["fresh"].append(await once(manager, upload))
                samples["cached"].append(await once(manager, upload))
                samples["inline"].append(await once(manager, inline))
            finally:
                await manager.aclose()
            await asyncio.sleep(0)
        uploads = [r for r in emulator.requests if r.action == "upload"]
        assert len(uploads) >= runs, "the PDF was not uploaded once per fresh backend"
    return median(samples["fresh"]), median(samples["cached"]), median(samples["inline"])


def measure(runs: int) -> str:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        roots = Roots([base])
        pdf = base / "doc.pdf"
        pages = make_pdf(pdf, 10 * MiB)
        tree = base / "repo"
        tree.mkdir()
        make_tree(tree, 2000)
        upload = InputSettings()  # 10 MB > inline_max_bytes: hashed and counted, not kept
        inline = InputSettings(inline_max_bytes=16 * MiB, inline_total_max_bytes=16 * MiB)
        wide = InputSettings(max_files=2500, directory_token_budget=2_000_000)

        def load_pdf(s: InputSettings) -> Callable[[], object]:
            return lambda: load_files_sync([str(pdf)], roots, s)

        def load_tree() -> object:
            return load_files_sync([str(tree)], roots, wide)

        got = load_files_sync([str(pdf)], roots, upload).report.included[0]
        assert got.tokens == pages * 258, (got.tokens, pages)
        tree_report = load_files_sync([str(tree)], roots, wide).report
        assert len(tree_report.included) == 2000, tree_report.left_out_counts

        pdf_ours, pdf_inline, pdf_base = timed(
            [load_pdf(upload), load_pdf(inline), lambda: plain_hash(pdf)], runs
        )
        tree_ours, tree_base = timed([load_tree, lambda: plain_read_tree(tree)], runs)
        peak_pdf = traced_peak(load_pdf(upload))
        peak_pdf_inline = traced_peak(load_pdf(inline))
        peak_tree = traced_peak(load_tree)
        tree_bytes = tree_report.bytes
        import asyncio

        ttfb_fresh, ttfb_cached, ttfb_inline = asyncio.run(first_byte(pdf, roots, runs))

        rows += [
            Row(
                f"10 MB PDF -> Media by path (sha256 + {pages} pages counted), median",
                f"{pdf_ours * 1e3:.1f} ms",
                f"{pdf_base * 1e3:.1f} ms (hashlib.file_digest)",
                f"{pdf_ours / pdf_base:.2f}x",
                "<= 3x",
                ok(pdf_ours <= 3 * pdf_base),
            ),
            Row(
                "10 MB PDF -> Media by path, peak traced memory",
                f"{peak_pdf / MiB:.1f} MiB",
                "",
                "",
                "<= 4 MiB (streamed)",
                ok(peak_pdf <= 4 * MiB),
            ),
            Row(
                "10 MB PDF -> Media inline (data kept), median",
                f"{pdf_inline * 1e3:.1f} ms",
                f"{pdf_base * 1e3:.1f} ms",
                f"{pdf_inline / pdf_base:.2f}x",
                "",
                "",
            ),
            Row(
                "10 MB PDF -> Media inline, peak traced memory",
                f"{peak_pdf_inline / MiB:.1f} MiB",
                "",
                "",
                "<= 2.5x file size",
                ok(peak_pdf_inline <= 2.5 * 10 * MiB),
            ),
            Row(
                "10 MB PDF: time to first upstream byte via the manager (Files API upload)",
                f"{ttfb_fresh * 1e3:.0f} ms",
                f"{ttfb_inline * 1e3:.0f} ms (sent inline)",
                f"{ttfb_fresh / ttfb_inline:.2f}x",
                "<= 1 s",
                ok(ttfb_fresh <= 1.0),
            ),
            Row(
                "10 MB PDF: time to first upstream byte, uploaded before (cached)",
                f"{ttfb_cached * 1e3:.0f} ms",
                "",
                "",
                "",
                "",
            ),
            Row(
                f"2,000-file directory ({tree_bytes / MiB:.1f} MiB) -> TextFiles, median",
                f"{tree_ours * 1e3:.0f} ms",
                f"{tree_base * 1e3:.0f} ms (os.walk + read_text)",
                f"{tree_ours / tree_base:.2f}x",
                "<= 3x",
                ok(tree_ours <= 3 * tree_base),
            ),
            Row(
                "2,000-file directory, peak traced memory",
                f"{peak_tree / MiB:.1f} MiB",
                "",
                "",
                "<= 4x its bytes",
                ok(peak_tree <= 4 * tree_bytes),
            ),
        ]
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss = usage / MiB if sys.platform == "darwin" else usage / 1024  # bytes on macOS
    rows.append(Row("process peak RSS (whole benchmark)", f"{rss:.0f} MiB"))
    return table("Files into requests (sandbox + loader)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    print(measure(parser.parse_args().runs))


if __name__ == "__main__":
    main()
