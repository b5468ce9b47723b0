"""gemini-failover-mcp: an MCP server for Gemini with a failover manager underneath,
usable as a Python library too (see :mod:`gemini_failover.library`).

The public names below are imported on first use, so ``import gemini_failover`` (which
the command line does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_manager": "gemini_failover.library",
    "failover_manager": "gemini_failover.library",
    "FailoverManager": "gemini_failover.resilience.manager",
    "Settings": "gemini_failover.config",
    "ConfigError": "gemini_failover.config",
    "load_settings": "gemini_failover.config",
    "GenerationRequest": "gemini_failover.protocol",
    "Turn": "gemini_failover.protocol",
    "TextFile": "gemini_failover.protocol",
    "Media": "gemini_failover.protocol",
    "Thinking": "gemini_failover.protocol",
    "Usage": "gemini_failover.protocol",
    "Grounding": "gemini_failover.protocol",
    "Result": "gemini_failover.resilience.results",
    "Provenance": "gemini_failover.resilience.results",
    "RequestFailed": "gemini_failover.resilience.results",
    "Category": "gemini_failover.resilience.errors",
}

__all__ = [
    "Category",
    "ConfigError",
    "FailoverManager",
    "GenerationRequest",
    "Grounding",
    "Media",
    "Provenance",
    "RequestFailed",
    "Result",
    "Settings",
    "TextFile",
    "Thinking",
    "Turn",
    "Usage",
    "__version__",
    "create_manager",
    "failover_manager",
    "load_settings",
]

if TYPE_CHECKING:
    from gemini_failover.config import ConfigError, Settings, load_settings
    from gemini_failover.library import create_manager, failover_manager
    from gemini_failover.protocol import (
        GenerationRequest,
        Grounding,
        Media,
        TextFile,
        Thinking,
        Turn,
        Usage,
    )
    from gemini_failover.resilience.errors import Category
    from gemini_failover.resilience.manager import FailoverManager
    from gemini_failover.resilience.results import Provenance, RequestFailed, Result


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gemini_failover' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
