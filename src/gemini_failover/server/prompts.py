"""MCP prompts: what people ask Gemini for from another assistant, ready-made (listed
by prompts/list; Claude Desktop shows them in its prompt menu).

Each prompt is a user message for the *calling* assistant: it says which gemini_*
tool to call with which options (the strongest model, thinking high) and what to do
with the answer, with the user's material inside it.

No ``from __future__ import annotations`` here, as in tools/handlers.py: the SDK reads
the prompts' annotations when it registers them, and would eval strings each time.
"""

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field


def _quoted(label: str, text: str) -> str:
    return f"<{label}>\n{text.strip()}\n</{label}>"


def second_opinion(
    plan: Annotated[str, Field(description="The plan or decision to check, in full.")],
    context: Annotated[
        str, Field(description="Constraints, goals or what was already ruled out.")
    ] = "",
) -> str:
    extra = f"\n\nContext:\n{_quoted('context', context)}" if context.strip() else ""
    return (
        "Get a second opinion from Gemini on the plan below. Call gemini_generate with "
        'thinking="high" (and model="pro" when gemini_list_models shows a Pro model), '
        "asking Gemini to act as a sceptical senior "
        "reviewer: what could go wrong, what is missing, which assumptions are weakest, "
        "and what it would do differently (ranked by impact). Then tell me where Gemini "
        "agrees and disagrees with the plan, and what you would change, citing its "
        "points.\n\nPlan:\n" + _quoted("plan", plan) + extra
    )


def review_code(
    code: Annotated[str, Field(description="The code or a unified diff to review.")],
    focus: Annotated[
        str, Field(description="What to look at most (security, performance, ...).")
    ] = "",
) -> str:
    kind = "diff" if code.lstrip().startswith(("diff --git", "--- ", "@@")) else "code"
    what = f" Focus on {focus.strip()}." if focus.strip() else ""
    return (
        f"Have Gemini review the {kind} below. Call gemini_generate with "
        'thinking="high" (and model="pro" when gemini_list_models shows a Pro model), '
        "asking for a code review: bugs and edge cases first, then "
        "security, error handling, performance and readability, each finding with its "
        f"location (file and line or hunk), why it matters and a concrete fix.{what} "
        "Then list the findings you agree with, most important first, and say which "
        f"ones you doubt and why.\n\n{_quoted(kind, code)}"
    )


def explain(
    subject: Annotated[
        str, Field(description="A concept, or a file's path or content, to explain.")
    ],
    audience: Annotated[
        str, Field(description="Who the explanation is for (e.g. a new team member).")
    ] = "",
) -> str:
    who = f" for {audience.strip()}" if audience.strip() else ""
    return (
        f"Ask Gemini to explain the subject below{who}. If it is a file or folder path, "
        "pass it in the files argument (an absolute path) rather than pasting it. Call "
        "gemini_generate (add "
        "google_search=true when the subject is about current tools, versions or events, "
        "so the answer cites its sources) asking for: what it is, how it works, an "
        "example, and the common pitfalls. Then give me the explanation in your own "
        f"words, keeping Gemini's sources.\n\n{_quoted('subject', subject)}"
    )


def add_prompts(server: MCPServer) -> None:
    server.prompt(
        name="second_opinion",
        title="Second opinion from Gemini",
        description="Ask Gemini (Pro, thinking high) to critique a plan or a decision.",
    )(second_opinion)
    server.prompt(
        name="review_code",
        title="Code review by Gemini",
        description="Have Gemini review code or a diff: bugs, security, fixes.",
    )(review_code)
    server.prompt(
        name="explain",
        title="Explain with Gemini",
        description="Have Gemini explain a file or a concept (with sources if current).",
    )(explain)
