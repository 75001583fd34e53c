"""The simulated provider over real HTTP: profiles, SSE with usage, errors, table replay, CLI, and Dispatch."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from modelyard.simulate import Profile, Simulator, load_table, start
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.helpers import ServerThread, _model, free_port, write_config

TABLE = "task_id,model,success,cost_usd\nt-1,sim-a,1,0.002\nt-1,sim-b,0,0.010\n"


class SimThread:
    def __init__(self, sim: Simulator) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.runner, self.port = asyncio.run_coroutine_threadsafe(start(sim, "127.0.0.1", 0), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimThread]:
    (tmp_path / "t.csv").write_text(TABLE)
    s = SimThread(Simulator(
        seed=1, default=Profile(first_token_ms=5, output_tokens=40),
        profiles={"flaky": Profile(error_rate=1.0, error_status=503),
                  "sim-a": Profile(first_token_ms=1, price_in_per_mtok=1.0, price_out_per_mtok=5.0)},
        table=load_table(tmp_path / "t.csv")))
    yield s
    s.stop()


def chat(url: str, model: str, stream: bool = False, **kw: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "x" * 400}], "stream": stream, **kw}
    return httpx.post(f"{url}/chat/completions", json=body, headers=kw.pop("headers", {}) or {}, timeout=5)


def test_profile_answer_with_usage(sim: SimThread) -> None:
    r = chat(sim.url, "any-model")
    doc = r.json()
    assert r.status_code == 200 and r.headers["x-modelyard-simulated"] == "profile"
    assert doc["usage"]["prompt_tokens"] == 100 and doc["usage"]["completion_tokens"] == 40
    assert doc["choices"][0]["message"]["content"].split(":")[0] in ("PASS", "FAIL")
    assert chat(sim.url, "any-model").json()["choices"] == doc["choices"]  # same seed and prompt, same answer


def test_streaming_sends_usage_last_and_done(sim: SimThread) -> None:
    r = chat(sim.url, "any-model", stream=True, stream_options={"include_usage": True})
    datas = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 100
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def test_error_rate_answers_errors(sim: SimThread) -> None:
    r = chat(sim.url, "flaky")
    assert r.status_code == 503 and "error" in r.json()


def test_table_replay_by_header_and_metadata(sim: SimThread) -> None:
    r = httpx.post(f"{sim.url}/chat/completions", headers={"x-modelyard-task": "t-1"}, timeout=5,
                   json={"model": "sim-a", "messages": [{"role": "user", "content": "go"}]})
    doc = r.json()
    assert r.headers["x-modelyard-simulated"] == "table" and doc["choices"][0]["message"]["content"].startswith("PASS")
    # usage derived from cost_usd at the profile prices: 80% input at $1/M, 20% output at $5/M
    assert doc["usage"]["prompt_tokens"] == 1600 and doc["usage"]["completion_tokens"] == 80
    r = chat(sim.url, "sim-b", metadata={"task": "t-1"})
    assert r.json()["choices"][0]["message"]["content"].startswith("FAIL")


def test_cli_serves_over_http(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(TABLE)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli.main", "simulate", "--listen", f"127.0.0.1:{port}",
                             "--table", str(tmp_path / "t.csv"), "--seed", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "simulator did not start"
                time.sleep(0.1)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).json()
        assert {m["id"] for m in models["data"]} == {"sim-a", "sim-b"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_dispatch_end_to_end_through_the_simulator(sim: SimThread, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_KEY", "sim-key")
    cfg = write_config(tmp_path, endpoints={"sim": {"api": "openai", "base_url": sim.url, "api_key_env": "SIM_KEY"}},
                       models=[_model("sim-a", 1, 1.0, 0.1, 5.0, endpoint="sim", provider="sim"),
                               _model("licensed", 1, 1.0, 0.1, 5.0, endpoint="sim", provenance=["licensed-data"])])
    thread = ServerThread(cfg)
    running = thread.start()
    try:
        with grpc.insecure_channel(running.address) as ch:
            req = router_pb2.DispatchRequest(
                route=router_pb2.RouteRequest(
                    request_id=uuid.uuid4().hex, job_id="sim-job",
                    task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python"),
                    constraints=types_pb2.Constraints(allowed_models=["sim-a"])),
                messages=[router_pb2.ChatMessage(role="user", content="fix it")], stream=True,
                metadata={"task": "t-1"})
            events = list(router_pb2_grpc.RouterStub(ch).Dispatch(req, metadata=auth(), timeout=10))
        out = events[-1].outcome
        assert "".join(e.content.text for e in events if e.WhichOneof("event") == "content").startswith("PASS")
        assert out.status == types_pb2.OUTCOME_STATUS_SUCCESS
        assert out.cost_usd == pytest.approx(0.002, abs=1e-6)  # the table's cost, via usage and catalog prices
    finally:
        thread.stop()
