"""The manager as a Python library: ``from gemini_failover import ...``, built from
settings, against the emulator through the real google-genai SDK."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import gemini_failover
from gemini_failover import (
    Category,
    ConfigError,
    GenerationRequest,
    RequestFailed,
    Turn,
    create_manager,
    failover_manager,
)
from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.emulator.text import expected_text

FAST: dict[str, Any] = {
    "attempt_timeout": 2.0,
    "total_timeout": 5.0,
    "retry": {"backoff_initial": 0.001, "backoff_max": 0.005},
}


async def test_generate_stream_count_and_embed_fail_over_through_the_library(
    emulator: Emulator, emulator_server: EmulatorServer
) -> None:
    emulator.configure("pro", faults=[{"kind": "status", "code": 503}])
    async with failover_manager(
        api_key="test-key",
        base_url=emulator_server.base_url,
        models=["pro", "flash"],
        embedding_models=["embed"],
        **FAST,
    ) as gemini:
        result = await gemini.generate(GenerationRequest.from_prompt("hello library"))
        assert result.text == expected_text("hello library")
        assert result.provenance.served_by == "flash"
        assert [(f.from_model, f.to_model) for f in result.provenance.failovers] == [
            ("pro", "flash")
        ]

        stream = gemini.stream(GenerationRequest.from_prompt("a streamed answer"))
        deltas = [delta async for delta in stream]
        assert "".join(deltas) == expected_text("a streamed answer")
        assert stream.result is not None and stream.result.provenance.served_by == "flash"

        count, provenance = await gemini.count_tokens((Turn("user", "count these words"),))
        assert count > 0 and provenance.served_by == "flash"

        vectors, provenance = await gemini.embed(("one", "two"))
        assert len(vectors) == 2 and len(vectors[0]) > 0
        assert provenance.served_by == "embed"


async def test_an_expected_failure_is_a_typed_request_failed(
    emulator: Emulator, emulator_server: EmulatorServer
) -> None:
    emulator.configure("*", faults=[{"kind": "status", "code": 400}])
    async with failover_manager(
        api_key="test-key", base_url=emulator_server.base_url, models=["pro"], **FAST
    ) as gemini:
        with pytest.raises(RequestFailed) as failed:
            await gemini.generate(GenerationRequest.from_prompt("rejected"))
    assert failed.value.category is Category.BAD_REQUEST
    assert failed.value.provenance is not None
    assert failed.value.provenance.attempts[0].model == "pro"


def test_settings_are_checked_before_anything_is_built() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        create_manager(api_key="  ", models=["pro"])
    with pytest.raises(ConfigError, match="models"):
        create_manager(api_key="k", models=[])
    with pytest.raises(TypeError, match="either settings or"):
        create_manager(gemini_failover.load_settings(api_key="k"), models=["pro"])


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = gemini_failover.nope


def test_importing_the_package_loads_neither_the_sdk_nor_the_engine() -> None:
    code = (
        "import sys, gemini_failover; "
        "print(any(m.startswith(('google.genai', 'gemini_failover.resilience')) "
        "for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_every_public_name_resolves() -> None:
    for name in gemini_failover.__all__:
        assert getattr(gemini_failover, name) is not None, name


def test_keyword_settings_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the code passes is what it gets (the server's env-over-file order is for
    Claude Desktop's env block, not for a library call)."""
    monkeypatch.setenv("GEMINI_FAILOVER_MODELS", "from-the-environment")
    monkeypatch.setenv("GEMINI_FAILOVER_TOTAL_TIMEOUT", "42")
    manager = create_manager(api_key="k", models=["pro", "flash"])
    assert manager.settings.models == ["pro", "flash"]
    assert manager.settings.total_timeout == 42  # not passed: the environment's
    with pytest.raises(ConfigError, match="models"):
        create_manager(api_key="k", models=["pro", "pro"])
