"""The emulator's layout: a fault table covering every fault kind, and a wire layer that
stands on its own (a Gemini-compatible gateway reuses it)."""

from __future__ import annotations

import ast
import json
import typing
from pathlib import Path

import pytest

import gemini_failover.emulator as emulator_pkg
from gemini_failover.emulator import HANDLERS, Fault, FaultHandler, RequestFacts, handles
from gemini_failover.emulator.decisions import Delay, Hang
from gemini_failover.emulator.faults import ActiveFault
from gemini_failover.emulator.spec import HangFault, parse_fault
from gemini_failover.emulator.wire import (
    EmbedRequest,
    GenerateRequest,
    ListModelsQuery,
    error_body,
    parse_json_object,
    rate_limited,
    route_model_path,
    sse_frame,
    stream_chunk,
)

PACKAGE = Path(emulator_pkg.__file__).parent


def _fault_kinds() -> set[str]:
    union = typing.get_args(Fault)[0]  # Annotated[Union[...], discriminator]
    kinds: set[str] = set()
    for model in typing.get_args(union):
        kinds.update(typing.get_args(model.model_fields["kind"].annotation))
    return kinds


def test_every_fault_kind_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == _fault_kinds()
    assert len(HANDLERS) == 14


def test_a_kind_cannot_be_registered_twice() -> None:
    class Another(FaultHandler[HangFault]):
        def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Delay:
            return Delay(0, 0)

    before = HANDLERS["hang"]
    with pytest.raises(ValueError, match="hang"):
        handles("hang")(Another)
    assert HANDLERS["hang"] is before


def test_active_fault_fires_through_its_handler() -> None:
    fault = ActiveFault.of(parse_fault({"kind": "hang", "after": 2, "count": 1}))
    assert fault.applies(RequestFacts("m", "count_tokens"))
    assert fault.evaluate(RequestFacts("m", "stream"), 0.0, 0.0) == Hang(2)
    streams_only = ActiveFault.of(parse_fault({"kind": "stream_cut"}))
    assert not streams_only.applies(RequestFacts("m", "generate"))
    restricted = ActiveFault.of(parse_fault({"kind": "status", "code": 500, "actions": ["get"]}))
    assert not restricted.applies(RequestFacts("m", "generate"))


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "gemini_failover":
            found.extend((node.level, f"gemini_failover.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
    return found


def test_the_wire_layer_imports_nothing_from_the_emulator() -> None:
    files = sorted((PACKAGE / "wire").glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for level, module in _imports(path):
            assert level in (0, 1), f"{path.name} imports from outside wire/: {module}"
            if module.startswith("gemini_failover"):  # only the JSON codec, a leaf
                assert module == "gemini_failover.json_codec", f"{path.name}: {module}"


def test_no_emulator_module_is_over_500_lines() -> None:
    sizes = {
        p.relative_to(PACKAGE).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 500} == {}


def test_wire_reads_request_bodies() -> None:
    body = parse_json_object(
        b'{"contents": [{"role": "user", "parts": [{"text": "Hi"}]},'
        b' {"role": "model", "parts": [{"text": "Hel"}, {"text": "x", "thought": true}]},'
        b' {"role": "user", "parts": [{"text": "go on"}]}],'
        b' "systemInstruction": {"parts": [{"text": "be brief"}]},'
        b' "generationConfig": {"maxOutputTokens": "12", "responseMimeType": "application/json"}}'
    )
    assert body is not None
    request = GenerateRequest.parse(body)
    assert request.first_user_text == "Hi"
    assert request.trailing_model_text == "Hel"  # thought parts are not text
    assert request.text_chars == len("Hi" + "Hel" + "go on" + "be brief")
    assert (request.max_output_tokens, request.json_mode, request.schema) == (12, True, None)
    assert parse_json_object(b"[1]") is None
    assert parse_json_object(b"{") is None

    embed = EmbedRequest.parse({"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8})
    assert (embed.batch, [i.text for i in embed.items]) == (False, ["a"])
    assert embed.items[0].output_dimensionality == 8
    assert ListModelsQuery.parse(b"pageSize=2&pageToken=4&key=k") == ListModelsQuery(2, 4)

    route = route_model_path("POST", "models/gemini-2.5-flash:streamGenerateContent")
    assert (route.model, route.action) == ("gemini-2.5-flash", "stream")
    assert route_model_path("POST", "m:frobnicate").action is None


def test_wire_builds_answers_and_errors() -> None:
    chunk = stream_chunk("Hi", model_version="m", response_id="r1", finish_reason="STOP")
    frame = sse_frame(chunk)
    assert frame.startswith(b"data: {") and frame.endswith(b"}\r\n\r\n")
    assert json.loads(frame.removeprefix(b"data: ")) == chunk
    assert "usageMetadata" not in chunk

    limited = rate_limited("m", "minute", "10", 5.5)
    assert limited.code == 429 and limited.status == "RESOURCE_EXHAUSTED"
    assert [d["@type"].rsplit(".", 1)[1] for d in limited.body["error"]["details"]] == [
        "QuotaFailure",
        "Help",
        "RetryInfo",
    ]
    assert limited.body["error"]["details"][-1]["retryDelay"] == "5.5s"
    assert limited.headers == (("retry-after", "6"),)
    assert rate_limited("m", "day", "10", 60, header=False).headers == ()
    assert error_body(503) == {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }


def _module_name(path: Path) -> str:
    parts = ["gemini_failover", "emulator", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path, level: int, module: str) -> list[str]:
    if level == 0:
        return [module]
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)]
    return [".".join([*base, module]) if module else ".".join(base)]


def test_no_import_cycle_inside_the_emulator() -> None:
    """Every import counts, TYPE_CHECKING ones too. No module imports the package it is
    in (whose __init__ imports it back); the rest must form no cycle."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for level, module in _imports(path):
            for target in _targets(path, level, module):
                if target in files and target != name:
                    assert not name.startswith(target + "."), f"{name} imports {target}"
                    graph[name].add(target)

    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> None:
        if node in stack:
            cycle = [*stack[stack.index(node) :], node]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert graph["gemini_failover.emulator.gemini_api"] >= {"gemini_failover.emulator.wire"}
