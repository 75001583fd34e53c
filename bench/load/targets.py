"""What the load benchmark runs against: bench configs and the subprocesses (modelyard, echo, sink, redis).

Every process binds a free loopback port, logs into the run's temp dir and is ended by its own pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import yaml

from tests.helpers import _model, config_dict, key_for

REPO = Path(__file__).resolve().parents[2]
BIG_BUDGET = {"day": {"soft_usd": 900_000, "hard_usd": 1_000_000},
              "month": {"soft_usd": 9_000_000, "hard_usd": 10_000_000}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            try:
                grpc.channel_ready_future(ch).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                continue
    raise RuntimeError(f"not ready on port {port} after {timeout_s}s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A child process whose output goes to `log`; terminated (then killed) by its pid on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, **(env or {})})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def grpc_helper(tmp: Path, mode: str) -> Iterator[tuple[int, int]]:
    """The echo server (mode echo) or the OTLP sink (mode sink): yields (port, pid)."""
    port = free_port()
    log = tmp / f"{mode}.log"
    with process([sys.executable, "-m", "bench.load.echo_server", "--port", str(port), "--mode", mode], log) as p:
        wait_ready(port, p, log)
        yield port, p.pid


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port with its own data dir; yields its URL."""
    port = free_port()
    data = tmp / "redis"
    data.mkdir(exist_ok=True)
    log = tmp / "redis.log"
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--protected-mode", "yes"]
    with process(args, log) as p:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if p.poll() is not None:
                raise RuntimeError(f"redis-server exited: {log.read_text()[-1000:]}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"


def models(n: int) -> list[dict[str, Any]]:
    """n synthetic models over four tiers with spread prices (n=4 gives the test config's models)."""
    if n <= 4:
        return config_dict(Path("x"))["models"][:n]
    out = []
    for i in range(n):
        tier = 1 + i % 4
        scale = 1.0 + (i % 7) * 0.15
        out.append(_model(f"m{i:03d}-t{tier}", tier, 0.05 * tier**2 * scale, 0.005 * tier**2 * scale,
                          0.40 * tier**2 * scale))
    return out


def write_bench_config(
    tmp: Path, *, store: str = "sqlite", sink_port: int | None = None, n_models: int = 4,
    redis_url_env: str = "MODELYARD_BENCH_REDIS_URL", front: str = "python",
) -> Path:
    """The test config with budgets large enough never to refuse (they are still checked and reserved)."""
    cfg = config_dict(tmp / "modelyard.db", **{"server.front": front})
    cfg["models"] = models(n_models)
    for t in cfg["tenants"]:
        t["budgets"] = BIG_BUDGET
        t.pop("policy", None)
    cfg["server"]["max_concurrent_rpcs"] = 1000
    if store == "redis":
        cfg["store"]["kind"] = "redis"
        cfg["store"]["redis"] = {"url_env": redis_url_env, "key_prefix": "bench"}
    if sink_port is not None:
        cfg["telemetry"] = {"enabled": True, "service_name": "modelyard-bench",
                            "otlp": {"protocol": "grpc", "endpoint": f"http://127.0.0.1:{sink_port}"}}
    path = tmp / "modelyard.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def redis_store_available(config: Path) -> str | None:
    """None when this build can open a Redis store, else the reason it cannot (to print and skip)."""
    from modelyard.config import load_config
    from modelyard.store import open_store

    try:
        open_store(load_config(config).store)
    except Exception as exc:  # the other engineer's store may not exist yet, or may reject the config
        return str(exc)
    return None


@contextlib.contextmanager
def modelyard_server(config: Path, tmp: Path, env: dict[str, str] | None = None) -> Iterator[tuple[int, int]]:
    """`python -m modelyard.cli.main serve` on a free port; yields (port, pid)."""
    port = free_port()
    log = tmp / "modelyard.log"
    args = [sys.executable, "-m", "modelyard.cli.main", "serve", "--config", str(config),
            "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"]
    with process(args, log, env) as p:
        wait_ready(port, p, log)
        yield port, p.pid


def bearer(name: str = "admin") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key_for(name)}"),)


def key_hash(name: str) -> str:
    return hashlib.sha256(key_for(name).encode()).hexdigest()


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """VmRSS (or another /proc status field, e.g. VmHWM for the peak) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")
