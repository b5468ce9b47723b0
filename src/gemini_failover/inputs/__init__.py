"""Files a user names, read safely into request attachments.

- :mod:`.sandbox`: the allowed roots and the check-then-open that cannot escape them.
- :mod:`.loader`: paths, ``file://`` URIs and directories -> ``TextFile`` / ``Media`` and
  a report of what was included and left out.
- :mod:`.media`: MIME types by magic bytes, token estimates (pages, durations).
- :mod:`.walk`: the bounded directory walk with ``.gitignore`` rules.
- :mod:`.upload`: re-open a large file for upload, verified against its SHA-256.
- :mod:`.settings`: the ``inputs`` settings group.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemini_failover.inputs.loader import (
        Included,
        LeftOut,
        Loaded,
        LoadReport,
        load_files,
        load_files_sync,
    )
    from gemini_failover.inputs.sandbox import (
        ALLOWED_DIRS_ENV,
        InputError,
        Roots,
        parse_allowed_dirs,
        user_path,
    )
    from gemini_failover.inputs.settings import InputSettings
    from gemini_failover.inputs.upload import VerifiedReader, iter_media, open_media

#: Where each name lives. Imported on first use: the settings (read at start-up by the
#: configuration) must not pull in the loader, the directory walk and anyio.
_WHERE = {
    **dict.fromkeys(
        ("Included", "LeftOut", "Loaded", "LoadReport", "load_files", "load_files_sync"),
        "loader",
    ),
    **dict.fromkeys(
        ("ALLOWED_DIRS_ENV", "InputError", "Roots", "parse_allowed_dirs", "user_path"),
        "sandbox",
    ),
    "InputSettings": "settings",
    **dict.fromkeys(("VerifiedReader", "iter_media", "open_media"), "upload"),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ALLOWED_DIRS_ENV",
    "Included",
    "InputError",
    "InputSettings",
    "LeftOut",
    "LoadReport",
    "Loaded",
    "Roots",
    "VerifiedReader",
    "iter_media",
    "load_files",
    "load_files_sync",
    "open_media",
    "parse_allowed_dirs",
    "user_path",
]
