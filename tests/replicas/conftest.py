"""Fixtures for multi-replica tests: N modelyard server processes sharing one config and one Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import FRONTS
from tests.helpers import config_dict, free_port, read_all, stderr_file
from tests.redis_fixtures import RedisServer, redis_server

__all__ = ["redis_server"]

PREFIX = "my"


def redis_store_config(**overrides: Any) -> dict[str, Any]:
    store: dict[str, Any] = {"kind": "redis", "reservation_ttl_s": 600,
                             "redis": {"url_env": "MODELYARD_REDIS_URL", "key_prefix": PREFIX,
                                       "sync_interval_s": 0.5}}
    store.update(overrides)
    return {"store": store}


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    port: int
    stderr: IO[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Cluster:
    config: Path
    redis: RedisServer
    cfg: dict[str, Any]
    replicas: list[Replica] = field(default_factory=list)

    def spawn(self, replica_id: str) -> Replica:
        port = free_port()
        err = stderr_file()
        env = {**os.environ, "MODELYARD_REDIS_URL": self.redis.url, "MODELYARD_REPLICA_ID": replica_id}
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli.main", "serve", "--config", str(self.config),
             "--listen", f"127.0.0.1:{port}", "--log-level", "ERROR"],
            stdout=subprocess.DEVNULL, stderr=err, env=env,
        )
        replica = Replica(proc, port, err)
        self.replicas.append(replica)
        return replica

    def wait_ready(self, replica: Replica, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if replica.proc.poll() is not None:
                err = read_all(replica.stderr)
                raise RuntimeError(f"replica exited: {err}")
            if store_health(replica.address) == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.05)
        raise RuntimeError("replica did not become ready")

    def stop(self) -> None:
        for r in self.replicas:
            if r.proc.poll() is None:
                r.proc.terminate()
        for r in self.replicas:
            try:
                r.proc.wait(15)
            except subprocess.TimeoutExpired:
                r.kill()


def store_health(address: str, timeout: float = 1.0) -> int | None:
    """The store component's health status, or None when the replica does not answer."""
    try:
        with grpc.insecure_channel(address) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="modelyard.store"), timeout=timeout)
            return int(resp.status)
    except grpc.RpcError:
        return None


def write_cluster_config(path: Path, cfg: dict[str, Any]) -> None:
    """Write the shared config atomically (rename), as a ConfigMap update would appear."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    tmp.replace(path)


@pytest.fixture(params=FRONTS)
def cluster_factory(request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer) -> Iterator[Any]:
    """`make(n, store={...}, edit=fn)` starts n replicas (ids r0..) on one config file and one
    Redis; `edit` may change the generated config dict first. The dict is kept on `cluster.cfg`.
    Every replica test runs on both fronts (the Rust front reserves in Redis with the same script)."""
    clusters: list[Cluster] = []

    def make(n: int, *, store: dict[str, Any] | None = None,
             edit: Callable[[dict[str, Any]], None] | None = None) -> Cluster:
        cfg = config_dict(tmp_path / "unused.db", **{"server.front": request.param})
        cfg["store"] = redis_store_config(**(store or {}))["store"]
        if edit is not None:
            edit(cfg)
        path = tmp_path / "modelyard.yaml"
        write_cluster_config(path, cfg)
        cluster = Cluster(path, redis_server, cfg)
        clusters.append(cluster)
        started = [cluster.spawn(f"r{i}") for i in range(n)]
        for r in started:
            cluster.wait_ready(r)
        return cluster

    yield make
    for c in clusters:
        c.stop()
