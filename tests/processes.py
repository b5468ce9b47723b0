"""Helpers for tests that run the project's commands as separate processes."""

from __future__ import annotations

import asyncio
import socket
import time


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def listening(port: int, proc: asyncio.subprocess.Process, timeout: float = 15) -> None:
    """Until the server accepts connections (another process: nothing to await but
    trying to connect), or fail if it died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if proc.returncode is not None:
                raise RuntimeError(f"server on {port} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on {port} never listened") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
