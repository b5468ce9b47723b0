"""The MCP tools: names, flat parameters with their bounds, descriptions written for
the model that picks the tool, and truthful annotations.

Each handler runs the checks a parameter schema cannot express (validation.py), then
hands over to calls.py: one call into the shared FailoverManager, RequestFailed mapped
to a ToolError, a structured result with provenance, rendered by render.py (the answer
as text, everything else structured). calls.py (and with it the request path) is
imported by the first tool call or by ``warm_up()``, so listing the tools stays cheap.
The tools are StrictTools (arguments.py): closed input schemas, strict types, one-line
messages for invalid arguments.

No ``from __future__ import annotations`` here: the SDK reads each handler's
annotations several times while it builds the tools (signature, context, resolvers),
and string annotations would be eval'ed every time (~3 ms of start-up); these are
evaluated once, when build_tools defines the handlers.
"""

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, Resolve
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from gemini_failover.tools import options as o
from gemini_failover.tools import render
from gemini_failover.tools import validation as v
from gemini_failover.tools.arguments import StrictTool, portable_schema
from gemini_failover.tools.files import (
    MAX_URL_CHARS,
    MAX_URLS,
    FileInputs,
    ask_roots,
    check_urls,
    files_output,
)
from gemini_failover.tools.models import (
    ChatTurn,
    CountTokensOutput,
    EmbedOutput,
    GenerateOutput,
    JsonOutput,
)

if TYPE_CHECKING:
    from gemini_failover.resilience.manager import FailoverManager

#: Returns the process's failover manager (waits while the runtime is starting).
ManagerSource = Callable[[], Awaitable["FailoverManager"]]
#: Returns the health document.
HealthSource = Callable[[], Awaitable[dict[str, Any]]]
Ctx = Context[Any, Any]

#: Longest wait (s) for the models' limits (models.get) before listing them: right
#: after start-up they are being fetched, and null limits would mislead.
PROFILES_WAIT = 2.0


def _calls() -> ModuleType:
    """The request path, imported by the first tool call (not by tools/list)."""
    from gemini_failover.tools import calls

    return calls


def warm_up() -> None:
    """Import the request path now (call it in a worker thread after start-up), so the
    first tool calls do not wait for it."""
    from gemini_failover.inputs.sandbox import Roots
    from gemini_failover.tools import arguments

    _calls()
    arguments.problem("warm-up", {"type": "object", "properties": {}}, {})
    Roots(())  # the files sandbox (tools/files.py imports it on first use)
    from gemini_failover.observability.logging import redact_text

    redact_text("")


# -- parameter types (flat, with bounds and descriptions) -------------------------------

Prompt = Annotated[
    str,
    Field(
        min_length=1,
        description="What to ask Gemini. Plain text; up to 4 MiB.",
    ),
]
SystemInstruction = Annotated[
    str | None,
    Field(
        min_length=1,
        description="Optional instructions that frame every answer (role, tone, format).",
    ),
]
Temperature = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=2.0,
        allow_inf_nan=False,
        description="Randomness, 0 to 2. Low for facts and code, high for brainstorming. "
        "Omit for the model's default.",
    ),
]
TopP = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Nucleus sampling, 0 to 1. Omit for the model's default.",
    ),
]
MaxOutputTokens = Annotated[
    int | None,
    Field(
        ge=1,
        le=v.MAX_OUTPUT_TOKENS,
        description="Cap on the answer's length in tokens (about 4 characters each). "
        "Omit for the model's default.",
    ),
]
StopSequences = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=v.MAX_STOP_SEQUENCE_CHARS)]] | None,
    Field(
        max_length=v.MAX_STOP_SEQUENCES,
        description="Up to 5 strings; the answer ends before the first one it would produce.",
    ),
]

# -- files and web pages ------------------------------------------------------------------

Files = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=4096)]] | None,
    Field(
        max_length=1000,
        description="Files or folders for Gemini to read (text, code, images, PDF, audio, "
        "video): absolute paths or file:// URIs inside the client's roots.",
    ),
]
Urls = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS)]] | None,
    Field(max_length=MAX_URLS, description="Public http(s) pages for Gemini to read."),
]


async def _client_roots(ctx: Ctx, files: Files = None) -> Any:
    return ask_roots(ctx, files)


#: The client's roots, filled by the SDK's resolver (not an argument: not in the schema).
Roots = Annotated[Any, Resolve(_client_roots)]


def _file_arguments(loaded: Any, urls: tuple[str, ...]) -> dict[str, Any]:
    """The calls.py keywords for what the files and urls arguments brought in."""
    return {
        "attachments": loaded.attachments if loaded is not None else (),
        "urls": urls,
        "files": files_output(loaded, urls),
    }


# -- annotations (truthful hints for the client) ----------------------------------------

#: Generation reads nothing and changes nothing the client owns, but calls an external
#: service and returns a different answer each time (and spends quota).
_GENERATE = ToolAnnotations(
    readOnlyHint=True, destructiveHint=False, idempotentHint=False, openWorldHint=True
)
#: Same input, same result; calls Gemini.
_LOOKUP = ToolAnnotations(
    readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True
)
#: Reports this server's own state; no upstream call.
_LOCAL = ToolAnnotations(
    readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False
)

_PROVENANCE_NOTE = (
    " The text is the answer (plus one line if a failover, continuation or retry "
    "happened); the structured result also names the model that served it (served_by), "
    "every attempt, every failover and its reason."
)

_FEATURES_NOTE = (
    " Pass a result's conversation_id (its text's last line) back to continue that conversation."
)

Generated = Annotated[CallToolResult, GenerateOutput]


def build_tools(
    get_manager: ManagerSource, health: HealthSource, inputs: FileInputs | None = None
) -> list[StrictTool]:
    """The seven gemini_* tools. ``get_manager`` is awaited by each call, so the server
    can answer the handshake before the manager is built. ``inputs``: the sandbox for
    the ``files`` argument (default: nothing readable)."""
    inputs = inputs if inputs is not None else FileInputs()

    async def gemini_generate(
        prompt: Prompt,
        ctx: Ctx,
        system_instruction: SystemInstruction = None,
        temperature: Temperature = None,
        top_p: TopP = None,
        max_output_tokens: MaxOutputTokens = None,
        stop_sequences: StopSequences = None,
        files: Files = None,
        urls: Urls = None,
        roots: Roots = None,
        google_search: o.GoogleSearch = False,
        thinking: o.ThinkingArg = None,
        thinking_budget: o.ThinkingBudget = None,
        include_thoughts: o.IncludeThoughts = False,
        model: o.ModelArg = None,
        failover: o.FailoverArg = True,
        conversation_id: o.ConversationId = None,
    ) -> Generated:
        v.check_prompt(prompt, system_instruction)
        stops = v.check_stop_sequences(stop_sequences)
        pages = check_urls(urls)
        loaded = await inputs.load(ctx, files, roots)
        manager = await get_manager()
        output: GenerateOutput = await _calls().generate(
            manager,
            ctx,
            [("user", prompt)],
            system_instruction=system_instruction,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=max_output_tokens,
            stop_sequences=stops,
            **_file_arguments(loaded, pages),
            options=o.Options(
                google_search=google_search,
                thinking=thinking,
                thinking_budget=thinking_budget,
                include_thoughts=include_thoughts,
                model=model,
                failover=failover,
                conversation_id=conversation_id,
            ),
        )
        return render.generated(
            output, conversation_id_in_text=manager.settings.conversations.id_in_text
        )

    async def gemini_chat(
        turns: Annotated[
            list[ChatTurn],
            Field(
                min_length=1,
                max_length=v.MAX_CHAT_TURNS,
                description="The conversation so far, oldest first: user and model turns, "
                "starting and ending with a user turn.",
            ),
        ],
        ctx: Ctx,
        system_instruction: SystemInstruction = None,
        temperature: Temperature = None,
        top_p: TopP = None,
        max_output_tokens: MaxOutputTokens = None,
        stop_sequences: StopSequences = None,
        files: Files = None,
        urls: Urls = None,
        roots: Roots = None,
        google_search: o.GoogleSearch = False,
        thinking: o.ThinkingArg = None,
        thinking_budget: o.ThinkingBudget = None,
        include_thoughts: o.IncludeThoughts = False,
        model: o.ModelArg = None,
        failover: o.FailoverArg = True,
        conversation_id: o.ConversationId = None,
    ) -> Generated:
        pairs = [(t.role, t.text) for t in turns]
        v.check_turns(pairs, system_instruction)
        stops = v.check_stop_sequences(stop_sequences)
        pages = check_urls(urls)
        loaded = await inputs.load(ctx, files, roots)
        manager = await get_manager()
        output: GenerateOutput = await _calls().generate(
            manager,
            ctx,
            pairs,
            system_instruction=system_instruction,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=max_output_tokens,
            stop_sequences=stops,
            **_file_arguments(loaded, pages),
            options=o.Options(
                google_search=google_search,
                thinking=thinking,
                thinking_budget=thinking_budget,
                include_thoughts=include_thoughts,
                model=model,
                failover=failover,
                conversation_id=conversation_id,
            ),
        )
        return render.generated(
            output, conversation_id_in_text=manager.settings.conversations.id_in_text
        )

    async def gemini_generate_json(
        prompt: Prompt,
        schema: Annotated[
            dict[str, Any],
            Field(
                description="A JSON Schema (object) the answer must validate against, e.g. "
                '{"type": "object", "properties": {"name": {"type": "string"}}, '
                '"required": ["name"]}. Only local $refs (#/$defs/...).',
            ),
        ],
        ctx: Ctx,
        system_instruction: SystemInstruction = None,
        temperature: Temperature = None,
        max_output_tokens: MaxOutputTokens = None,
        files: Files = None,
        urls: Urls = None,
        roots: Roots = None,
        thinking: o.ThinkingArg = None,
        thinking_budget: o.ThinkingBudget = None,
        include_thoughts: o.IncludeThoughts = False,
        model: o.ModelArg = None,
        failover: o.FailoverArg = True,
    ) -> Annotated[CallToolResult, JsonOutput]:
        v.check_prompt(prompt, system_instruction)
        checked = await v.check_json_schema(schema)
        pages = check_urls(urls)
        loaded = await inputs.load(ctx, files, roots)
        output: JsonOutput = await _calls().generate_json(
            await get_manager(),
            prompt,
            checked,
            system_instruction=system_instruction,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
            **_file_arguments(loaded, pages),
            options=o.Options(
                thinking=thinking,
                thinking_budget=thinking_budget,
                include_thoughts=include_thoughts,
                model=model,
                failover=failover,
            ),
        )
        return render.generated_json(output)

    async def gemini_count_tokens(
        text: Annotated[str, Field(min_length=1, description="The text to measure.")],
        ctx: Ctx,
        files: Files = None,
        roots: Roots = None,
    ) -> Annotated[CallToolResult, CountTokensOutput]:
        v.check_total_size("text", v.require_text("text", text))
        loaded = await inputs.load(ctx, files, roots)
        file_args = _file_arguments(loaded, ())
        del file_args["urls"]
        output: CountTokensOutput = await _calls().count_tokens(
            await get_manager(), text, **file_args
        )
        return render.counted(output)

    async def gemini_embed(
        texts: Annotated[
            list[Annotated[str, Field(min_length=1)]],
            Field(
                min_length=1,
                max_length=v.MAX_EMBED_TEXTS,
                description="1 to 100 texts to embed, each non-empty.",
            ),
        ],
    ) -> Annotated[CallToolResult, EmbedOutput]:
        v.check_texts(texts)
        output: EmbedOutput = await _calls().embed(await get_manager(), texts)
        return render.embedded(output)

    # No outputSchema for these two: their documents (docs/server.md) have open,
    # evolving maps that a closed schema would have to list in full.
    async def gemini_list_models() -> CallToolResult:
        manager = await get_manager()
        await manager.fetch_profiles(PROFILES_WAIT)
        return render.document(_calls().list_models(manager).model_dump(mode="json"))

    async def gemini_health() -> CallToolResult:
        await (await get_manager()).fetch_profiles(PROFILES_WAIT)
        return render.document(await health())

    tools: list[StrictTool] = []
    #: Each output model's schema, made once (gemini_generate and gemini_chat share one).
    schemas: dict[type[BaseModel], dict[str, Any]] = {}

    def add_tool(
        fn: Callable[..., Any],
        *,
        title: str,
        description: str,
        annotations: ToolAnnotations,
        output: type[BaseModel] | None = None,
    ) -> None:
        # structured_output=False: the SDK neither derives an output schema from the
        # return annotation (ours, lean, replaces it) nor re-validates every result's
        # structuredContent, which is a pydantic model's own dump.
        tool = StrictTool.from_function(
            fn,
            title=title,
            description=description,
            annotations=annotations,
            structured_output=False,
        )
        assert isinstance(tool, StrictTool)  # from_function builds a cls
        tool.parameters = portable_schema(tool.parameters)
        if output is not None and output not in schemas:
            schemas[output] = render.output_schema(output)
        tool.fn_metadata.output_schema = schemas[output] if output is not None else None
        tools.append(tool)

    add_tool(
        gemini_generate,
        title="Generate text with Gemini",
        description="Ask Gemini a single question or give it a task and get text back. "
        "Use for anything one prompt can carry (answers, summaries, drafts, code). "
        "Survives a failing Gemini model: retries, then moves to a fallback model that "
        "can serve the request; a long answer that breaks mid-way is continued. "
        "Streams the text as progress notifications when the client asks for progress."
        + _PROVENANCE_NOTE
        + _FEATURES_NOTE,
        annotations=_GENERATE,
        output=GenerateOutput,
    )
    add_tool(
        gemini_chat,
        title="Continue a conversation with Gemini",
        description="Send Gemini a multi-turn conversation (user and model turns, oldest "
        "first, ending with the user's latest message) and get the next model turn. Use "
        "instead of gemini_generate when earlier turns matter and you hold them; to come "
        "back to an earlier gemini_generate or gemini_chat answer, pass its "
        "conversation_id instead. Same failover, streaming, provenance and options "
        "(google_search, thinking, model) as gemini_generate.",
        annotations=_GENERATE,
        output=GenerateOutput,
    )
    add_tool(
        gemini_generate_json,
        title="Generate JSON that fits a schema",
        description="Ask Gemini for structured data: the answer is a JSON value validated "
        "against the JSON Schema you give (returned in 'value'). Use for extraction, "
        "classification and any output a program will read. Only models that support "
        "structured output serve it; an answer that does not validate is retried or "
        "served by another model." + _PROVENANCE_NOTE,
        annotations=_GENERATE,
        output=JsonOutput,
    )
    add_tool(
        gemini_count_tokens,
        title="Count tokens",
        description="Count how many Gemini tokens a text takes (to check it fits a context "
        "window or a budget before sending it). Served by the first healthy model.",
        annotations=_LOOKUP,
        output=CountTokensOutput,
    )
    add_tool(
        gemini_embed,
        title="Embed texts",
        description="Turn 1 to 100 texts into embedding vectors (for search, clustering, "
        "similarity). All vectors of one call come from one embedding model: it never "
        "mixes vectors from different embedding spaces. The text is a one-line summary; "
        "the vectors are in the structured result (embeddings).",
        annotations=_LOOKUP,
        output=EmbedOutput,
    )
    add_tool(
        gemini_list_models,
        title="List the Gemini models in the failover chain",
        description="The models this server can use, in failover order, with each one's "
        "limits (context window, output tokens, JSON support) and live state (circuit "
        "breaker, error rate, rate-limit and quota cool-downs). No generation call (the "
        "limits come from Gemini's model list, fetched once).",
        annotations=_LOCAL,
    )
    add_tool(
        gemini_health,
        title="Health of the Gemini failover server",
        description="Is Gemini usable right now? Overall status (ok / degraded / down), the "
        "model taking traffic, each model's breaker and cool-downs, the last failover and "
        "its reason, and the shared-state backend. Same document as the health://status "
        "resource. No generation call.",
        annotations=_LOCAL,
    )
    return tools
