"""Endpoints: chain keys as (endpoint, model) pairs, their settings (environment JSON,
nested variables, the TOML file), the one-line configuration errors, secrets never
echoed, and what is keyed per pair (overrides, profiles, the model argument)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gemini_failover import pairs
from gemini_failover.config import ConfigError, Settings, load_settings, unknown_variables
from gemini_failover.gateway.routing import ChainRouter
from gemini_failover.gemini.endpoints import build_backend, client_spec
from gemini_failover.resilience.capabilities import Needs, misfit, pair_profile
from gemini_failover.resilience.choice import aliases, resolve

SECRET = "canary-endpoint-secret-4711"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GEMINI_") or name.upper() == "GOOGLE_API_KEY":
            monkeypatch.delenv(name)


def two_endpoints(**extra: Any) -> Settings:
    values: dict[str, Any] = {
        "models": ["studio:gemini-2.5-pro", "vertex:gemini-2.5-pro", "studio:gemini-2.5-flash"],
        "endpoints": {
            "studio": {"api_key": SECRET},
            "vertex": {"kind": "vertex", "project": "p", "location": "us-central1"},
        },
    }
    values.update(extra)
    return load_settings(**values)


# -- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "endpoint", "model"),
    [
        ("gemini-2.5-pro", None, "gemini-2.5-pro"),
        ("vertex:gemini-2.5-pro", "vertex", "gemini-2.5-pro"),
        ("my_pool-2:models/gemini-2.5-flash", "my_pool-2", "models/gemini-2.5-flash"),
        ("Vertex:gemini-2.5-pro", None, "Vertex:gemini-2.5-pro"),  # not an endpoint name
        ("vertex:", None, "vertex:"),
        (":gemini", None, ":gemini"),
    ],
)
def test_split(key: str, endpoint: str | None, model: str) -> None:
    assert pairs.split(key) == (endpoint, model)
    assert pairs.model_of(key) == model


def test_canonical_keys_are_bare_on_the_default_endpoint() -> None:
    assert pairs.canonical("studio:gemini-2.5-pro", "studio") == "gemini-2.5-pro"
    assert pairs.canonical(" vertex:gemini-2.5-pro ", "studio") == "vertex:gemini-2.5-pro"
    assert pairs.canonical("gemini-2.5-pro", "studio") == "gemini-2.5-pro"
    assert pairs.join("vertex", "m", "studio") == "vertex:m"
    assert pairs.join("studio", "m", "studio") == "m"
    assert pairs.endpoint_of("m", "studio") == "studio"


# -- settings ----------------------------------------------------------------------------


def test_todays_configuration_keeps_working() -> None:
    s = load_settings(api_key="k", models=["gemini-2.5-pro", "gemini:gemini-2.5-flash"])
    assert s.models == ["gemini-2.5-pro", "gemini-2.5-flash"]  # canonical: bare
    assert s.default_endpoint_name == "gemini"
    assert list(s.endpoints_in_use()) == ["gemini"]
    assert s.endpoint_table()["gemini"].api_version == "v1beta"


def test_pairs_name_their_endpoints() -> None:
    s = two_endpoints(default_endpoint="studio")
    assert s.models == ["gemini-2.5-pro", "vertex:gemini-2.5-pro", "gemini-2.5-flash"]
    assert list(s.endpoints_in_use()) == ["studio", "vertex"]  # embeddings: bare, on studio
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    assert SECRET not in s.model_dump_json()


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_FAILOVER_ENDPOINTS__VERTEX__KIND", "vertex")
    monkeypatch.setenv("GEMINI_FAILOVER_ENDPOINTS__VERTEX__PROJECT", "proj")
    monkeypatch.setenv("GEMINI_FAILOVER_ENDPOINTS__VERTEX__LOCATION", "europe-west4")
    monkeypatch.setenv("GEMINI_FAILOVER_ENDPOINTS__VERTEX__ACCESS_TOKEN", SECRET)
    monkeypatch.setenv("GEMINI_FAILOVER_MODELS", "gemini-2.5-pro,vertex:gemini-2.5-pro")
    s = load_settings()
    vertex = s.endpoints["vertex"]
    assert (vertex.kind, vertex.project, vertex.location) == ("vertex", "proj", "europe-west4")
    assert s.models == ["gemini-2.5-pro", "vertex:gemini-2.5-pro"]
    assert unknown_variables() == []  # endpoint variables are settings, not typos


def test_json_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GEMINI_FAILOVER_ENDPOINTS",
        '{"backup": {"api_key": "b"}, "express": {"kind": "vertex", "api_key": "e"}}',
    )
    monkeypatch.setenv("GEMINI_FAILOVER_MODELS", "backup:gemini-2.5-pro,express:gemini-2.5-pro")
    s = load_settings()
    assert s.endpoints["express"].express
    assert client_spec(s.endpoints["express"]).vertex


def test_toml_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'models = ["studio:gemini-2.5-pro", "vertex:gemini-2.5-pro"]\n'
        'default_endpoint = "studio"\n'
        "[endpoints.studio]\n"
        'api_key = "k"\n'
        "[endpoints.vertex]\n"
        'kind = "vertex"\nproject = "p"\nlocation = "global"\n'
        '[model_overrides."vertex:gemini-2.5-pro"]\ninput_token_limit = 1000\n'
        '[model_overrides."gemini-2.5-pro"]\njson_schema = false\ninput_token_limit = 5\n'
    )
    s = load_settings(cfg)
    assert s.models == ["gemini-2.5-pro", "vertex:gemini-2.5-pro"]
    vertex = s.override_for("vertex:gemini-2.5-pro")
    assert vertex is not None and vertex.input_token_limit == 1000  # the pair's wins
    assert vertex.json_schema is False  # the bare model's applies on every endpoint
    studio = s.override_for("gemini-2.5-pro")
    assert studio is not None and studio.input_token_limit == 5


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"models": ["vertx:gemini-2.5-pro"]}, "'vertx:gemini-2.5-pro' names the endpoint 'vertx'"),
        ({"embedding_models": ["nowhere:e"]}, "GEMINI_FAILOVER_EMBEDDING_MODELS"),
        (
            {
                "models": ["studio:gemini-2.5-pro", "gemini-2.5-pro"],
                "default_endpoint": "studio",
                "endpoints": {"studio": {"api_key": "k"}},
            },
            "duplicate model",
        ),
        ({"default_endpoint": "nowhere"}, "GEMINI_FAILOVER_DEFAULT_ENDPOINT"),
        ({"endpoints": {"Vertex": {"kind": "vertex"}}}, "not an endpoint name"),
        (
            {"endpoints": {"v": {"kind": "vertex", "project": "p"}}},
            r"endpoints\.v \(GEMINI_FAILOVER_ENDPOINTS__V\): a vertex endpoint needs project",
        ),
        (
            {"endpoints": {"v": {"kind": "vertex", "api_key": SECRET, "project": "p"}}},
            "either api_key",
        ),
        ({"endpoints": {"s": {"project": "p"}}}, "a gemini_api endpoint takes no project"),
        ({"endpoints": {"s": {"kind": "openai"}}}, "GEMINI_FAILOVER_ENDPOINTS__S__KIND"),
    ],
)
def test_configuration_errors_are_one_line_and_name_the_variable(
    values: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle) as caught:
        load_settings(**values)
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message


def test_invalid_json_gives_an_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_FAILOVER_ENDPOINTS", "{vertex")
    with pytest.raises(ConfigError, match="GEMINI_FAILOVER_ENDPOINTS='"):
        load_settings()


def test_endpoints_without_credentials() -> None:
    s = load_settings(
        models=["gemini-2.5-pro", "studio:gemini-2.5-pro", "vertex:gemini-2.5-pro"],
        endpoints={"studio": {}, "vertex": {"kind": "vertex", "project": "p", "location": "l"}},
    )
    assert s.endpoints_without_credentials() == ["gemini", "studio"]  # vertex: ADC


def test_pointed_at_an_emulator() -> None:
    s = two_endpoints().pointed_at("http://127.0.0.1:9", "emu-key", "emu-token")
    studio, vertex = s.endpoints["studio"], s.endpoints["vertex"]
    assert studio.base_url == vertex.base_url == s.base_url == "http://127.0.0.1:9"
    assert studio.api_key is not None and studio.api_key.get_secret_value() == SECRET
    assert vertex.access_token is not None
    assert vertex.access_token.get_secret_value() == "emu-token"


# -- what is per pair --------------------------------------------------------------------


def test_the_backend_has_one_lazy_client_per_endpoint_in_use() -> None:
    s = two_endpoints(default_endpoint="studio", embedding_models=["vertex:text-embedding-005"])
    backend = build_backend(s)
    assert sorted(backend.backends) == ["studio", "vertex"]
    assert all(b._client is None for b in backend.backends.values())  # no I/O yet
    studio, model = backend.route("gemini-2.5-flash")
    assert (studio, model) == (backend.backends["studio"], "gemini-2.5-flash")
    assert backend.route("vertex:gemini-2.5-pro")[1] == "gemini-2.5-pro"
    assert backend.backends["vertex"].spec.blocking  # ADC: made in a worker thread
    assert SECRET not in repr(backend.backends["studio"])


def test_profiles_use_the_bare_model_and_the_endpoints_abilities() -> None:
    s = two_endpoints(
        endpoints={"prod": {"api_key": "k"}, "vertex": {"kind": "vertex", "api_key": "e"}},
        models=["prod:gemini-2.5-flash", "vertex:gemini-2.5-flash"],
    )
    prod = pair_profile(s, "prod:gemini-2.5-flash", None)
    vertex = pair_profile(s, "vertex:gemini-2.5-flash", None)
    assert prod.name == "prod:gemini-2.5-flash"
    assert prod.thinking.can_disable  # a Flash model, whatever "prod" sounds like
    assert prod.file_uploads and not vertex.file_uploads
    needs = Needs(prompt_tokens=10, uploads=True)
    assert misfit(prod, needs) is None
    assert "no Files API" in (misfit(vertex, needs) or "")


def test_a_bare_model_argument_is_the_first_chain_entry_with_that_model() -> None:
    names = ["studio:gemini-2.5-pro", "vertex:gemini-2.5-pro", "studio:gemini-2.5-flash"]
    assert resolve(names, {}, "gemini-2.5-pro").start == 0
    assert resolve(names, {}, "vertex:gemini-2.5-pro").start == 1
    assert resolve(names, {}, "flash").start == 2
    assert resolve(names, {"backup": "vertex:gemini-2.5-pro"}, "backup").start == 1
    assert aliases(names, {"f": "gemini-2.5-flash"})["f"] == "studio:gemini-2.5-flash"
    # an endpoint named like an alias does not make its models that alias
    assert "pro" not in aliases(["pro:gemini-2.5-flash"], {})


def test_pairs_spelled_in_full_on_the_default_endpoint_mean_the_same_pair() -> None:
    s = two_endpoints(
        models=["vertex:gemini-2.5-pro", "studio:gemini-2.5-pro"],
        default_endpoint="vertex",
        model_overrides={
            "vertex:gemini-2.5-pro": {"input_token_limit": 1234},
            "studio:gemini-2.5-pro": {"input_token_limit": 999},
        },
        model_aliases={"vp": "vertex:gemini-2.5-pro"},
    )
    assert s.models == ["gemini-2.5-pro", "studio:gemini-2.5-pro"]
    assert pair_profile(s, "gemini-2.5-pro", None).input_token_limit == 1234
    assert pair_profile(s, "studio:gemini-2.5-pro", None).input_token_limit == 999
    assert resolve(s.models, s.model_aliases, "vp").start == 0
    router = ChainRouter(s.models, s.embedding_models, ["auto"], s.default_endpoint_name)
    target = router.target("vertex:gemini-2.5-pro", "generate")
    assert target is not None and target.first == "gemini-2.5-pro"
    assert router.known("vertex:gemini-2.5-pro")
    with pytest.raises(ConfigError, match="names the same pair"):
        two_endpoints(
            default_endpoint="vertex",
            model_overrides={"vertex:gemini-2.5-pro": {}, "gemini-2.5-pro": {}},
        )
