"""A redis-server subprocess that tests start, kill and restart: real Redis only."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.client import Redis as SyncRedis
from redis.exceptions import RedisError

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    """True once something Redis-like answers PING (+PONG, or -NOAUTH when a
    password is required)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


class RedisProcess:
    """A redis-server subprocess on a fixed loopback port: kill it, start it again."""

    def __init__(self, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            pytest.fail(
                "redis-server is not installed: run .ci/start-redis.sh (it installs it) "
                "or apt-get install redis-server; the Redis suite must not be skipped"
            )
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"gf-redis-{self.port}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> None:
        assert self.proc is None, "already running"
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                self.kill()
                pytest.fail(f"redis-server on port {self.port} did not start:\n{log}")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, like a crashed host."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, password: str | None = None) -> SyncRedis:
        return SyncRedis(host="127.0.0.1", port=self.port, password=password)


@contextlib.contextmanager
def shared_or_private_redis() -> Iterator[str]:
    """``$REDIS_URL`` (CI starts one) when set, which must answer; else a private
    redis-server for as long as the context lasts."""
    url = os.environ.get("REDIS_URL")
    if url:
        try:
            SyncRedis.from_url(url, socket_connect_timeout=2).ping()
        except RedisError as exc:
            pytest.fail(f"REDIS_URL is set but Redis does not answer: {type(exc).__name__}")
        yield url
        return
    server = RedisProcess()
    server.start()
    try:
        yield server.url
    finally:
        server.close()
