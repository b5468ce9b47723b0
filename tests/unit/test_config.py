"""Settings: environment, TOML file, clear errors, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_failover.config import ConfigError, load_settings


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "canary-key-123")
    monkeypatch.setenv("GEMINI_FAILOVER_MODELS", " a , b,c ")
    monkeypatch.setenv("GEMINI_FAILOVER_BREAKER__BREAK_SECONDS", "7.5")
    s = load_settings()
    assert s.models == ["a", "b", "c"]
    assert s.breaker.break_seconds == 7.5
    assert s.api_key is not None and s.api_key.get_secret_value() == "canary-key-123"
    assert "canary-key-123" not in repr(s) and "canary-key-123" not in str(s.model_dump())


def test_google_api_key_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "g")
    assert load_settings().api_key is not None


def test_toml_file_below_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'models = ["x", "y"]\ntotal_timeout = 40\n[breaker]\nbreak_seconds = 3\n'
        "[model_overrides.y]\njson_schema = false\n"
    )
    monkeypatch.setenv("GEMINI_FAILOVER_TOTAL_TIMEOUT", "50")
    s = load_settings(cfg)
    assert s.models == ["x", "y"]
    assert s.total_timeout == 50  # env wins over the file
    assert s.breaker.break_seconds == 3
    assert s.model_overrides["y"].json_schema is False


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("GEMINI_FAILOVER_BREAKER__BREAK_SECONDS", "-1", "GEMINI_FAILOVER_BREAKER__BREAK_SECONDS"),
        ("GEMINI_FAILOVER_MODELS", "a,a", "duplicate"),
        ("GEMINI_FAILOVER_RETRY__BUDGET_RATIO", "2", "GEMINI_FAILOVER_RETRY__BUDGET_RATIO"),
        ("GEMINI_FAILOVER_CONTINUATION", "maybe", "GEMINI_FAILOVER_CONTINUATION"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=needle):
        load_settings()


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("models = [")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_settings(bad)


def test_light_imports() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gemini_failover.config, gemini_failover.resilience.errors, "
        "gemini_failover.resilience.manager; print('google.genai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_overrides_from_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GEMINI_FAILOVER_MODEL_OVERRIDES", '{"gemini-flash-latest": {"json_schema": false}}'
    )
    assert load_settings().model_overrides["gemini-flash-latest"].json_schema is False


def test_readme_documents_every_setting() -> None:
    from pydantic import BaseModel

    from gemini_failover.config import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = []
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for sub in ann.model_fields:
                env = f"GEMINI_FAILOVER_{name.upper()}__{sub.upper()}"
                if f"`{env}`" not in readme:
                    missing.append(env)
        elif name != "api_key" and f"`GEMINI_FAILOVER_{name.upper()}`" not in readme:
            missing.append(f"GEMINI_FAILOVER_{name.upper()}")
    assert missing == []


def test_an_unrelated_api_key_variable_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("API_KEY", "some-other-service")
    assert load_settings().api_key is None
    assert load_settings(api_key="in-code").api_key is not None


def test_a_pasted_key_loses_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "  pasted-key-42\n")
    key = load_settings().api_key
    assert key is not None and key.get_secret_value() == "pasted-key-42"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GEMINI_API_KEY", "canary\r\nX-Injected: 1"),
        ("GEMINI_API_KEY", "canary key"),
        (
            "GEMINI_FAILOVER_ENDPOINTS",
            '{"v": {"kind": "vertex", "project": "p", "location": "l", '
            '"access_token": "canary\\ntoken"}}',
        ),
    ],
)
def test_a_credential_that_cannot_go_into_a_header_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match="visible ASCII") as caught:
        load_settings()
    assert "canary" not in str(caught.value)


@pytest.mark.parametrize(
    "model", ["gemini pro", "gemini?x=1", "m\nx", "gemini#a", "ünï", "../files", "a/./b"]
)
def test_a_model_name_that_cannot_go_into_a_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    monkeypatch.setenv("GEMINI_FAILOVER_MODELS", f"gemini-2.5-flash,{model}")
    with pytest.raises(ConfigError, match="is not a model name"):
        load_settings()


@pytest.mark.parametrize(
    "model",
    ["gemini-2.5-pro@001", "tunedModels/my-tune", "models/gemini-2.5-flash", "gemini-1.5.pro"],
)
def test_model_names_as_deployments_spell_them_are_taken(
    monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    monkeypatch.setenv("GEMINI_FAILOVER_MODELS", model)
    assert load_settings().models == [model]
