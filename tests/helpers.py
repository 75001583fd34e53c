"""Test helpers: generated configs and a real modelyard server on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import hashlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
import yaml

KEYS = {
    # name: (tenant, scopes)
    "admin": ("acme", ["route", "report", "read", "admin"]),
    "route": ("acme", ["route"]),
    "report": ("acme", ["report"]),
    "read": ("acme", ["read"]),
    "beta": ("beta", ["route", "report", "read"]),
}


def key_for(name: str) -> str:
    return f"test-key-{name}-0123456789abcdef"


def _model(mid: str, tier: int, pin: float, pcached: float, pout: float, **extra: Any) -> dict[str, Any]:
    m = {
        "id": mid, "display_name": mid, "provider": extra.pop("provider", "testco"), "endpoint": "testco",
        "upstream_model": mid, "tier": tier,
        "price": {"input_per_mtok": pin, "cached_input_per_mtok": pcached, "output_per_mtok": pout,
                  "source": "https://example.com/pricing", "as_of": "2026-11-01"},
        "context_window": extra.pop("context_window", 200_000),
        "params": {"total_b": None, "active_b": None, "note": "not published"},
        "provenance": extra.pop("provenance", []),
        "capabilities": extra.pop("capabilities", ["tools", "json"]),
        "prior": {"success": extra.pop("prior_success", 0.3 + 0.12 * tier), "strength": 2},
        "latency": {"first_token_ms": 500 * tier, "output_tokens_per_s": 100 - 15 * tier},
    }
    m.update(extra)
    return m


def config_dict(db_path: Path, **overrides: Any) -> dict[str, Any]:
    tenants: dict[str, dict[str, Any]] = {
        "acme": {"id": "acme", "time_value_usd_per_hour": 30,
                 "budgets": {"day": {"soft_usd": 40, "hard_usd": 50}}, "keys": []},
        "beta": {"id": "beta", "time_value_usd_per_hour": 0,
                 "policy": {"required_provenance": ["licensed-data"]}, "keys": []},
    }
    for name, (tenant, scopes) in KEYS.items():
        tenants[tenant]["keys"].append({
            "id": f"{tenant}-{name}", "sha256": hashlib.sha256(key_for(name).encode()).hexdigest(),
            "scopes": scopes,
        })
    cfg: dict[str, Any] = {
        "version": 1,
        "server": {"listen": "127.0.0.1:0", "reflection": True, "shutdown_grace_s": 2},
        "store": {"kind": "sqlite", "sqlite": {"path": str(db_path)}, "reservation_ttl_s": 600},
        "routing": {"explore": True, "seed": 7},
        "endpoints": {"testco": {"api": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "TESTCO_KEY"}},
        "models": [
            _model("tiny-coder", 1, 0.05, 0.005, 0.40),
            _model("mid-coder", 2, 0.30, 0.03, 1.20, capabilities=["tools", "json", "vision"]),
            _model("big-coder", 3, 3.00, 0.30, 15.00, capabilities=["tools", "json", "vision"]),
            _model("licensed-coder", 2, 0.50, 0.05, 2.00, provenance=["licensed-data"], provider="licco"),
        ],
        "tenants": list(tenants.values()),
    }
    for dotted, value in overrides.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


def write_config(directory: Path, **overrides: Any) -> Path:
    path = directory / "modelyard.yaml"
    path.write_text(yaml.safe_dump(config_dict(directory / "modelyard.db", **overrides), sort_keys=False))
    return path


@dataclass
class RunningServer:
    address: str
    port: int
    config_path: Path
    key: str
    thread: ServerThread

    def key_for(self, name: str) -> str:
        return key_for(name)


class ServerThread:
    """A modelyard server on its own event loop in a thread, so sync and async clients both work."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.loop = asyncio.new_event_loop()
        self.server: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="modelyard-test-server")

    def _run(self) -> None:
        from modelyard.app import App
        from modelyard.server import Server

        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            try:
                self.server = Server(App.from_config_file(self.config_path), "127.0.0.1:0")
                await self.server.start()
            except BaseException as exc:
                self._error = exc
                raise
            finally:
                self._ready.set()
            await self.server.wait()

        # A start-up failure is surfaced to the test through self._error.
        with contextlib.suppress(BaseException):
            self.loop.run_until_complete(main())

    def start(self) -> RunningServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return RunningServer(address=f"127.0.0.1:{self.server.port}", port=self.server.port,
                             config_path=self.config_path, key=key_for("admin"), thread=self)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def app(self) -> Any:
        return self.server.app

    def stop(self) -> None:
        if self.server is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self.server.stop(grace=1), self.loop).result(30)
            except TimeoutError:
                self._dump_stuck_state()
                raise
        self._thread.join(30)

    def _dump_stuck_state(self) -> None:
        """A stop that hangs says where: every thread's stack and every task still on the server's loop."""
        print("server stop did not finish within 30 s; threads and tasks follow", file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)

        def tasks() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.print_stack(file=sys.stderr)

        with contextlib.suppress(Exception):
            self.loop.call_soon_threadsafe(tasks)
            time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stderr_file() -> IO[bytes]:
    """Where a spawned server's stderr goes: a file, not a pipe. Nobody reads a pipe while the server
    runs, and a server that logs more than the pipe holds (64 KB) blocks in its logging lock mid-request."""
    return tempfile.TemporaryFile()


def read_all(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode()


def spawn_server(config: Path, port: int) -> subprocess.Popen[bytes]:
    err = stderr_file()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli.main", "serve", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=err,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                grpc.channel_ready_future(ch).result(timeout=0.5)
                return proc
        except grpc.FutureTimeoutError:
            if proc.poll() is not None:
                raise RuntimeError(read_all(err) or "server exited") from None
    proc.kill()
    raise RuntimeError("server did not start")
