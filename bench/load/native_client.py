"""The native load generator (router_core/examples/grpc_load.rs): the same Route requests as
`service_load.route_request`, sent by N workers on one thread over one HTTP/2 connection, so a
figure is the server's rather than the Python gRPC client's (which, at about 1,500-4,500 calls/s
on this machine, is the ceiling of every Python-client row; see bench/README).

Built on first use (`cargo build --release --example grpc_load --features front`).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from bench.load import targets
from bench.load.loadgen import Summary, median_runs

REPO = targets.REPO
BINARY = REPO / "target" / "release" / "examples" / "grpc_load"
ROUTE_METHOD = "/modelyard.v1.Router/Route"
WARMUP = 200


def build() -> Path:
    manifest = REPO / "router_core" / "Cargo.toml"
    subprocess.run(["cargo", "build", "--quiet", "--release", "--manifest-path", str(manifest),
                    "--features", "front", "--example", "grpc_load"], check=True, cwd=REPO)
    return BINARY


def run_once(port: int, method: str, requests: int, concurrency: int, timeout_s: float) -> Summary:
    token = targets.key_for("admin")
    out = subprocess.run(
        [str(BINARY), "--addr", f"127.0.0.1:{port}", "--method", method, "--token", token,
         "--tag", uuid.uuid4().hex[:12], "--requests", str(requests), "--concurrency", str(concurrency)],
        capture_output=True, text=True, timeout=timeout_s, check=True)
    return Summary(**json.loads(out.stdout.strip().splitlines()[-1]))


def measure(port: int, method: str, concs: list[int], requests: int, runs: int,
            timeout_s: float) -> dict[str, dict[str, float]]:
    """Per concurrency: a warm-up run, then `runs` runs (fresh request ids each); the median summary."""
    out: dict[str, dict[str, float]] = {}
    for c in concs:
        run_once(port, method, WARMUP, c, timeout_s)
        out[str(c)] = median_runs([run_once(port, method, requests, c, timeout_s) for _ in range(runs)]).as_dict()
    return out
