"""Search grounding and thinking as capabilities (family defaults, models.get,
overrides, misfits) and model choice (names, aliases, failover off)."""

from __future__ import annotations

import pytest

# -- search grounding and thinking (family defaults, models.get, overrides) -------------
from gemini_failover.config import ModelOverride
from gemini_failover.protocol import ModelInfo, Thinking
from gemini_failover.resilience.capabilities import ModelProfile, Needs, misfit
from gemini_failover.resilience.choice import resolve
from gemini_failover.resilience.results import RequestFailed


@pytest.mark.parametrize(
    ("model", "search", "mode", "off"),
    [
        ("gemini-2.5-pro", True, "budget", False),
        ("gemini-2.5-flash", True, "budget", True),
        ("gemini-3-pro-preview", True, "level", False),
        ("gemini-3-flash", True, "level", True),
        ("gemini-2.0-flash", True, "none", False),
        ("gemini-embedding-001", False, "none", False),
        ("gemini-pro-latest", True, "budget", False),
    ],
)
def test_family_defaults(model: str, search: bool, mode: str, off: bool) -> None:
    p = ModelProfile.build(model, None, None)
    assert (p.google_search, p.thinking.mode, p.thinking.can_disable) == (search, mode, off)


def test_models_get_without_thinking_means_no_thinking_and_overrides_win() -> None:
    info = ModelInfo(name="gemini-2.5-flash", thinking=None)
    assert ModelProfile.build("gemini-2.5-flash", info, None).thinking.mode == "none"
    pinned = ModelOverride(thinking="budget", thinking_budget_max=100, google_search=False)
    p = ModelProfile.build("gemini-2.5-flash", info, pinned)
    assert (p.thinking.mode, p.thinking.budget_max, p.google_search) == ("budget", 100, False)


@pytest.mark.parametrize(
    ("thinking", "reason"),
    [
        (Thinking("off"), "thinking cannot be turned off"),
        (Thinking(budget=0), "thinking cannot be turned off (budget 0)"),
        (Thinking(budget=64), "thinking budget 64 below its minimum 128"),
        (Thinking(budget=40_000), "thinking budget 40,000 above its maximum 32,768"),
        (Thinking("high"), None),
        (Thinking(budget=-1), None),  # dynamic
    ],
)
def test_thinkingmisfits_on_a_pro_model(thinking: Thinking, reason: str | None) -> None:
    p = ModelProfile.build("gemini-2.5-pro", ModelInfo(name="gemini-2.5-pro", thinking=True), None)
    assert misfit(p, Needs(prompt_tokens=1, thinking=thinking)) == reason


def test_model_choiceresolves_names_and_aliases() -> None:
    names = ["gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.5-flash"]
    assert resolve(names, {}, "flash").start == 2  # the plain flash, not the lite one
    assert resolve(names, {}, "lite").start == 1
    assert resolve(names, {}, "PRO").start == 0
    assert resolve(names, {"fast": "gemini-2.5-flash-lite"}, "fast").start == 1
    choice = resolve(names, {}, "gemini-2.5-flash", failover=False)
    assert (choice.start, choice.stop(3)) == (2, 3)
    assert resolve(names, {}, None).stop(3) == 3
    with pytest.raises(RequestFailed, match=r"unknown model .x.; choose one of: gemini-2\.5-pro"):
        resolve(names, {}, "x")


def test_asking_only_for_thoughts_keeps_the_models_own_thinking_default() -> None:
    """include_thoughts alone must not change how much the model thinks (no level, no
    budget sent): the caller asked to see the thoughts, not for more or less of them."""
    from gemini_failover.gemini.content import thinking_config
    from gemini_failover.tools.options import Options

    thinking = Options(include_thoughts=True).thinking_config()
    assert thinking is not None and thinking.level is None and thinking.budget is None
    for model in ("gemini-2.5-flash", "gemini-3-pro-preview"):
        assert thinking_config(model, thinking) == {"include_thoughts": True}
    chosen = Options(thinking="high", include_thoughts=True).thinking_config()
    assert thinking_config("gemini-2.5-flash", chosen) == {
        "thinking_budget": 24576,
        "include_thoughts": True,
    }


def test_the_managers_choices_are_remembered_within_a_bound() -> None:
    """``choose`` remembers what it resolved (a name per call on the gateway's path), at
    most a bounded number of spellings (clients choose them), and never an unknown name."""
    from gemini_failover.config import load_settings
    from gemini_failover.resilience.manager import _MAX_CHOICES, FailoverManager

    settings = load_settings(api_key="k", models=["gemini-2.5-pro", "gemini-2.5-flash"])
    manager = FailoverManager(settings, backend=None)  # type: ignore[arg-type]  # never called
    assert manager.choose("flash") is manager.choose("flash")
    assert manager.choose("gemini:gemini-2.5-flash", failover=False).stop(2) == 2
    spellings = [" " * i + "flash" for i in range(_MAX_CHOICES + 50)]
    assert {manager.choose(s).start for s in spellings} == {1}  # past the bound: still right
    assert len(manager._choices) == _MAX_CHOICES
    for _ in range(2):
        with pytest.raises(RequestFailed, match="unknown model"):
            manager.choose("x")
    manager.settings = settings.model_copy(update={"model_aliases": {"x": "gemini-2.5-pro"}})
    assert manager.choose("x").start == 0  # new settings: resolved afresh
