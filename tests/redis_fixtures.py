"""Real `redis-server` processes for tests, on free loopback ports (never the shared 6379).

`RedisServer` runs `redis-server --save '' --appendonly yes --appendfsync always` in a temporary
directory, so a kill -9 followed by `restart()` keeps every acknowledged write.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return self
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}") from None
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """kill -9: no shutdown save; AOF with appendfsync always already holds every write."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)


def redis_available() -> bool:
    return Path(REDIS_SERVER).exists()


needs_redis = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests isolate themselves with `unique_prefix()`."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill or restart it."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"
