"""Property-based bad input (hypothesis, a few hundred cases), in-process for speed.

Whatever the arguments, a call ends quickly with either a result or a clear error
(never the SDK's bare "Error executing tool" crash text, never a hang); arguments that
are invalid by construction are rejected before any upstream call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent

from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.server.app import build_server
from gemini_failover.tools.validation import MAX_EMBED_TEXTS, MAX_OUTPUT_TOKENS
from tests.e2e.conftest import CANARY, fast_settings

CALL_TIMEOUT = 10.0
FAST = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


class Env:
    def __init__(self, portal: BlockingPortal, client: Client, emulator: Emulator) -> None:
        self.portal, self.client, self.emulator = portal, client, emulator

    def call(self, tool: str, arguments: Any) -> CallToolResult:
        async def bounded() -> CallToolResult:
            with anyio.fail_after(CALL_TIMEOUT):  # nothing hangs
                return await self.client.call_tool(tool, arguments)

        return self.portal.call(bounded)

    def upstream_calls(self) -> int:
        """Calls made for tool calls: the model-limit lookups (``get``) that start-up
        makes in the background may land at any moment, so they are not counted."""
        return sum(r.action != "get" for r in self.emulator.requests)


@asynccontextmanager
async def _stack(emulator: Emulator) -> AsyncIterator[Client]:
    async with EmulatorServer(emulator) as server:
        settings_ = fast_settings(server.base_url)
        backend = GeminiBackend(api_key=CANARY, base_url=server.base_url)
        manager = FailoverManager(settings_, backend)
        await manager.start()
        try:
            async with Client(build_server(settings_, manager)) as client:
                yield client
        finally:
            await manager.aclose()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with pytest.MonkeyPatch.context() as mp:
        import os

        for name in list(os.environ):
            if name.upper().startswith("GEMINI_") or name.upper() in ("GOOGLE_API_KEY", "API_KEY"):
                mp.delenv(name)
        emulator = Emulator()
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(_stack(emulator)) as client,
        ):
            yield Env(portal, client, emulator)


def check_clear(result: CallToolResult, tool: str) -> str | None:
    """None for a success; the message for an error, which must be a clear one."""
    if not result.is_error:
        assert result.structured_content is not None
        return None
    content = result.content[0]
    assert isinstance(content, TextContent)
    text = content.text
    # "Error executing tool X" marks a bug (the SDK's crash text); an expected
    # failure is the project's own message alone.
    assert not text.startswith("Error executing tool"), f"a bug escaped as a crash: {text}"
    assert len(text) > 10
    assert CANARY not in text
    return text


def check_rejected(env: Env, tool: str, arguments: Any) -> None:
    before = env.upstream_calls()
    result = env.call(tool, arguments)
    assert check_clear(result, tool) is not None, (tool, arguments)
    assert env.upstream_calls() == before, "invalid input reached Gemini"


# -- strategies ------------------------------------------------------------------------------

blank = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003", max_size=12)
words = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), min_size=1, max_size=40
).filter(lambda s: s.strip())
not_a_string = st.one_of(
    st.none(), st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)
)
not_a_number = st.one_of(
    # the MCP SDK pre-parses JSON in string arguments ("null" is None, a valid omission)
    st.text(max_size=5).filter(lambda s: not _numeric(s) and not _json_literal(s)),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)


def _json_literal(s: str) -> bool:
    try:
        json.loads(s)
    except ValueError:
        return False
    return True


def _numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def outside(low: float, high: float) -> st.SearchStrategy[float]:
    # Finite only: NaN and Infinity are not JSON, and the SDK sends them as null.
    return st.one_of(
        st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False),
        st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False),
    )


@st.composite
def invalid_generate(draw: st.DrawFn) -> dict[str, Any]:
    args: dict[str, Any] = {"prompt": draw(words)}
    broken = draw(
        st.sampled_from(
            ["prompt", "temperature", "top_p", "max_output_tokens", "stop", "system", "types"]
        )
    )
    if broken == "prompt":
        args["prompt"] = draw(st.one_of(blank, not_a_string))
    elif broken == "temperature":
        args["temperature"] = draw(st.one_of(outside(0.0, 2.0), not_a_number))
    elif broken == "top_p":
        args["top_p"] = draw(st.one_of(outside(0.0, 1.0), not_a_number))
    elif broken == "max_output_tokens":
        args["max_output_tokens"] = draw(
            st.one_of(
                st.integers(max_value=0),
                st.integers(min_value=MAX_OUTPUT_TOKENS + 1),
                st.integers(-(10**6), 10**6).map(lambda i: i + 0.5),
                not_a_number,
            )
        )
    elif broken == "stop":
        args["stop_sequences"] = draw(
            st.one_of(
                st.lists(words, min_size=6, max_size=9),
                st.lists(words, max_size=3).map(lambda xs: [*xs, ""]),
                st.integers(),
            )
        )
    elif broken == "system":
        args["system_instruction"] = draw(st.one_of(blank, st.integers()))
    else:
        args = draw(
            st.one_of(
                st.just({}),
                st.dictionaries(st.sampled_from(["temperature", "top_p"]), st.floats(), max_size=2),
            )
        )
    return args


@st.composite
def invalid_chat(draw: st.DrawFn) -> dict[str, Any]:
    turn = st.fixed_dictionaries({"role": st.sampled_from(["user", "model"]), "text": words})
    turns: list[Any] = draw(st.lists(turn, min_size=1, max_size=5))  # broken on purpose below
    turns[0]["role"] = "user"
    turns[-1]["role"] = "user"
    broken = draw(st.sampled_from(["empty", "first", "last", "role", "text", "shape", "many"]))
    if broken == "empty":
        turns = []
    elif broken == "first":
        turns.insert(0, {"role": "model", "text": "earlier"})
    elif broken == "last":
        turns.append({"role": "model", "text": "later"})
    elif broken == "role":
        turns[draw(st.integers(0, len(turns) - 1))]["role"] = draw(
            st.text(max_size=8).filter(lambda r: r not in ("user", "model"))
        )
    elif broken == "text":
        turns[draw(st.integers(0, len(turns) - 1))]["text"] = draw(st.one_of(blank, not_a_string))
    elif broken == "shape":
        turns[0] = draw(
            st.one_of(
                st.just({"role": "user"}),
                st.just({"text": "x"}),
                st.just({"role": "user", "text": "x", "extra": 1}),
                not_a_string,
            )
        )
    else:
        turns = [{"role": "user", "text": "x"}] * 1001
    return {"turns": turns}


bad_schemas = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.text(max_size=8).filter(
                lambda t: (
                    t not in ("object", "array", "string", "number", "integer", "boolean", "null")
                )
            )
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("object"), "required": st.one_of(st.integers(), st.text(max_size=3))}
    ),
    st.fixed_dictionaries({"minimum": not_a_number}),
    st.fixed_dictionaries(
        {
            "$ref": st.one_of(
                st.text(max_size=12).filter(lambda r: not r.startswith("#")),
                st.just("#/nowhere"),
                st.integers(),
            )
        }
    ),
    st.fixed_dictionaries(
        {"properties": st.one_of(st.integers(), st.lists(st.integers(), max_size=2))}
    ),
    st.just({"$ref": "#"}),
    st.just({"allOf": [{"$ref": "#"}]}),
)


@st.composite
def invalid_json(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"prompt": draw(words), "schema": draw(bad_schemas)}
    return {
        "prompt": draw(st.one_of(blank, not_a_string)),
        "schema": draw(st.one_of(st.just({"type": "object"}), not_a_string)),
    }


invalid_embed: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({"texts": []}),
    st.lists(words, min_size=MAX_EMBED_TEXTS + 1, max_size=MAX_EMBED_TEXTS + 3).map(
        lambda t: {"texts": t}
    ),
    st.tuples(st.lists(words, max_size=3), blank).map(lambda p: {"texts": [*p[0], p[1]]}),
    st.lists(not_a_string, min_size=1, max_size=3).map(lambda t: {"texts": t}),
    not_a_string.map(lambda t: {"texts": t}),
)
invalid_count = st.one_of(blank, not_a_string).map(lambda t: {"text": t})


# -- properties --------------------------------------------------------------------------


@settings(FAST, max_examples=120)
@given(arguments=invalid_generate())
def test_invalid_generate_arguments_are_rejected_upfront(
    env: Env, arguments: dict[str, Any]
) -> None:
    check_rejected(env, "gemini_generate", arguments)


@settings(FAST, max_examples=80)
@given(arguments=invalid_chat())
def test_invalid_chat_arguments_are_rejected_upfront(env: Env, arguments: dict[str, Any]) -> None:
    check_rejected(env, "gemini_chat", arguments)


@settings(FAST, max_examples=80)
@given(arguments=invalid_json())
def test_invalid_json_arguments_are_rejected_upfront(env: Env, arguments: dict[str, Any]) -> None:
    check_rejected(env, "gemini_generate_json", arguments)


@settings(FAST, max_examples=60)
@given(
    tool_arguments=st.one_of(
        invalid_embed.map(lambda a: ("gemini_embed", a)),
        invalid_count.map(lambda a: ("gemini_count_tokens", a)),
    )
)
def test_invalid_embed_and_count_arguments_are_rejected_upfront(
    env: Env, tool_arguments: tuple[str, dict[str, Any]]
) -> None:
    check_rejected(env, *tool_arguments)


@settings(FAST, max_examples=60)
@given(
    prompt=st.text(max_size=60),
    temperature=st.one_of(st.none(), st.floats(-1, 3)),
    top_p=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    max_output_tokens=st.one_of(st.none(), st.integers(-5, 400)),
    stop_sequences=st.one_of(st.none(), st.lists(st.text(max_size=4), max_size=6)),
)
def test_any_generate_arguments_end_in_a_result_or_a_clear_error(
    env: Env,
    prompt: str,
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int | None,
    stop_sequences: list[str] | None,
) -> None:
    arguments: dict[str, Any] = {"prompt": prompt}
    for name, value in [
        ("temperature", temperature),
        ("top_p", top_p),
        ("max_output_tokens", max_output_tokens),
        ("stop_sequences", stop_sequences),
    ]:
        if value is not None:
            arguments[name] = value
    check_clear(env.call("gemini_generate", arguments), "gemini_generate")


@settings(FAST, max_examples=30)
@given(
    schema=st.recursive(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["string", "integer", "number", "boolean"])}
        ),
        lambda inner: st.one_of(
            st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
            st.dictionaries(
                st.text(alphabet="abcdef", min_size=1, max_size=4), inner, max_size=3
            ).map(lambda props: {"type": "object", "properties": props, "required": sorted(props)}),
        ),
        max_leaves=6,
    )
)
def test_valid_schemas_give_a_validated_value_or_a_clear_error(
    env: Env, schema: dict[str, Any]
) -> None:
    result = env.call("gemini_generate_json", {"prompt": "make one", "schema": schema})
    if check_clear(result, "gemini_generate_json") is None:
        from jsonschema import validate

        validate(result.structured_content["value"], schema)
