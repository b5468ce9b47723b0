"""Client JSON Schemas checked, and answers validated, in worker processes with a deadline.

Why a process and not a thread: a thread cannot be stopped, and while it runs Python
code it holds the GIL, so the event loop gets the interpreter back only every switch
interval (5 ms) and not at all during one long C call: a ``pattern`` that backtracks
(``(a+)+$`` against the model's answer) runs inside ``re`` with the GIL held, for as
long as it likes. A process runs beside the event loop, and when its deadline passes
it is killed (and a new one is started for the next job). The static limits of
:mod:`gemini_failover.jsonschema_guard` keep honest work far below the deadlines.

- :data:`WORKERS` processes at most, started on the first schema (the JSON-free path
  never starts one), each driven by one thread of a private thread pool that blocks on
  the pipe, not on the GIL. A job waits for a free worker in the pool's queue.
- ``spawn`` start method: the child imports this module, jsonschema and referencing,
  nothing of the server (no inherited event loop, sockets or locks).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import multiprocessing
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Final

from gemini_failover.jsonschema_guard import (
    AnswerInvalid,
    SchemaRefused,
    encode,
    prepare,
    validate_answer,
)

log = logging.getLogger("gemini_failover.jsonschema")

#: Deadline for checking one schema (meta-schema, references, expansion). A 64 KiB
#: schema takes ~0.4 s on a loaded 2-core machine, nearly all of it jsonschema's
#: meta-schema check.
SCHEMA_CHECK_SECONDS: Final = 5.0
#: Deadline for validating one answer against its schema.
ANSWER_CHECK_SECONDS: Final = 5.0
#: Longest wait for a new worker process to be ready (its imports), before any job.
WORKER_START_SECONDS: Final = 30.0
#: Worker processes (and so jobs running at once); more jobs queue.
WORKERS: Final = 2
#: Schemas the server has already accepted, remembered to skip a second check.
_ACCEPTED_CACHE: Final = 256


class SchemaTimeout(SchemaRefused):
    """A schema (or an answer against it) took longer than its deadline to check."""


# -- the child process ---------------------------------------------------------------------


def _child(conn: Connection) -> None:  # pragma: no cover - runs in the worker process
    prepared = functools.lru_cache(maxsize=64)(prepare)
    conn.send(("ready", None))  # imports done: a job's deadline starts from here
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        reply: tuple[str, Any]
        try:
            schema = prepared(job[1])
            reply = ("ok", validate_answer(schema, job[2]) if job[0] == "answer" else None)
        except SchemaRefused as exc:
            reply = ("refused", str(exc))
        except AnswerInvalid as exc:
            reply = ("invalid", str(exc))
        except Exception as exc:  # noqa: BLE001 - a validator bug: report it, keep serving
            reply = ("error", type(exc).__name__)
        conn.send(reply)


# -- the parent side -----------------------------------------------------------------------


class _Worker:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_child, args=(child,), name="gemini-failover-jsonschema", daemon=True
        )
        self.process.start()
        child.close()
        # A spawned child imports jsonschema first (a second or more on a loaded
        # machine): that must not count against the first job's deadline.
        if not self.conn.poll(WORKER_START_SECONDS):
            self.kill()
            raise TimeoutError
        self.conn.recv()

    def run(self, job: tuple[Any, ...], timeout: float) -> tuple[str, Any]:
        self.conn.send(job)
        if not self.conn.poll(timeout):
            raise TimeoutError
        reply: tuple[str, Any] = self.conn.recv()
        return reply

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


_local = threading.local()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_accepted: OrderedDict[str, None] = OrderedDict()


def _run(job: tuple[Any, ...], timeout: float) -> tuple[str, Any]:
    """In a pool thread: this thread's worker process runs the job, or is killed."""
    worker: _Worker | None = getattr(_local, "worker", None)
    if worker is None or not worker.process.is_alive():
        worker = _local.worker = _Worker()
    try:
        return worker.run(job, timeout)
    except TimeoutError:
        log.warning("JSON Schema job over its %.1f s deadline: worker killed", timeout)
        worker.kill()
        _local.worker = None
        raise
    except (EOFError, OSError):
        worker.kill()
        _local.worker = None
        return ("error", "the worker process died")


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="jsonschema")
        return _executor


async def _submit(job: tuple[Any, ...], timeout: float, doing: str) -> Any:
    loop = asyncio.get_running_loop()
    try:
        kind, value = await loop.run_in_executor(_pool(), _run, job, timeout)
    except TimeoutError:
        raise SchemaTimeout(
            f"{doing} took longer than {timeout:g} s and was stopped; simplify the schema "
            "(a 'pattern' that backtracks, or a very large answer)"
        ) from None
    if kind == "ok":
        return value
    if kind == "invalid":
        raise AnswerInvalid(value)
    if kind == "refused":
        raise SchemaRefused(value)
    log.error("JSON Schema worker failed: %s", value)
    raise SchemaRefused(f"schema could not be checked ({value}); simplify it")


async def check_schema(schema: Mapping[str, Any]) -> str:
    """The schema as compact JSON once it passed every check; raises SchemaRefused.
    The size and depth limits are checked here (cheap), the rest in a worker."""
    encoded = encode(schema)
    if encoded in _accepted:
        _accepted.move_to_end(encoded)
        return encoded
    await _submit(("check", encoded), SCHEMA_CHECK_SECONDS, "checking the schema")
    _accepted[encoded] = None
    if len(_accepted) > _ACCEPTED_CACHE:
        _accepted.popitem(last=False)
    return encoded


async def validate(schema: Mapping[str, Any], text: str) -> Any:
    """``text`` parsed as JSON and validated against ``schema``, in a worker.
    Raises AnswerInvalid (not JSON, too deep, violates the schema) or SchemaRefused."""
    encoded = await check_schema(schema)
    return await _submit(("answer", encoded, text), ANSWER_CHECK_SECONDS, "validating the answer")


def decode(encoded: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(encoded)
    return value


__all__ = [
    "ANSWER_CHECK_SECONDS",
    "SCHEMA_CHECK_SECONDS",
    "WORKERS",
    "AnswerInvalid",
    "SchemaRefused",
    "SchemaTimeout",
    "check_schema",
    "validate",
]
