"""Config reload (Admin.ReloadConfig, SIGHUP), health, and SIGTERM drain-and-stop."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelyard.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    types_pb2,
)
from tests.conftest import auth
from tests.helpers import RunningServer, free_port, spawn_server, write_config

TASK = types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python")


def _route(ch: grpc.Channel, key: str = "admin") -> router_pb2.RouteDecision:
    return router_pb2_grpc.RouterStub(ch).Route(
        router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id="life", task=TASK), metadata=auth(key), timeout=5
    )


def _edit(path: Path, fn) -> None:
    cfg = yaml.safe_load(path.read_text())
    fn(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _drop_route_key(cfg: dict) -> None:
    acme = cfg["tenants"][0]
    acme["keys"] = [k for k in acme["keys"] if k["id"] != "acme-route"]


def test_bad_reload_is_rejected_and_the_old_config_keeps_serving(fresh_server: RunningServer) -> None:
    with grpc.insecure_channel(fresh_server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        before = admin.GetStats(admin_pb2.GetStatsRequest(), metadata=auth(), timeout=5).config_version
        _edit(fresh_server.config_path, lambda c: c["models"][0]["price"].__setitem__("output_per_mtok", -3))
        with pytest.raises(grpc.RpcError) as info:
            admin.ReloadConfig(admin_pb2.ReloadConfigRequest(), metadata=auth(), timeout=5)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "models[0].price.output_per_mtok" in info.value.details()
        assert _route(ch).model.model_id  # still serving on the old config
        assert admin.GetStats(admin_pb2.GetStatsRequest(), metadata=auth(), timeout=5).config_version == before


def test_reload_swaps_the_config_whole(fresh_server: RunningServer) -> None:
    with grpc.insecure_channel(fresh_server.address) as ch:
        assert _route(ch, "route").model.model_id

        def change(cfg: dict) -> None:
            _drop_route_key(cfg)
            cfg["models"] = [m for m in cfg["models"] if m["id"] != "tiny-coder"]

        _edit(fresh_server.config_path, change)
        resp = admin_pb2_grpc.AdminStub(ch).ReloadConfig(admin_pb2.ReloadConfigRequest(), metadata=auth(), timeout=5)
        assert resp.config_version != resp.previous_version and resp.models == 3
        with pytest.raises(grpc.RpcError) as info:
            _route(ch, "route")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ids = [
            m.model_id
            for m in catalog_pb2_grpc.CatalogStub(ch)
            .ListModels(catalog_pb2.ListModelsRequest(), metadata=auth(), timeout=5)
            .models
        ]
        assert "tiny-coder" not in ids and len(ids) == 3


def test_sighup_reloads_and_sigterm_drains_then_exits(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    proc = spawn_server(config, port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert _route(ch, "route").model.model_id
            _edit(config, _drop_route_key)
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            code = None
            while time.monotonic() < deadline:
                try:
                    _route(ch, "route")
                except grpc.RpcError as exc:
                    code = exc.code()
                    break
                time.sleep(0.1)
            assert code == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(ch)
            assert (
                health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                == health_pb2.HealthCheckResponse.SERVING
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_shutdown_stage_that_hangs_is_named_and_the_stop_still_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio

    from modelyard import server as server_module
    from tests.helpers import ServerThread

    monkeypatch.setattr(server_module, "STAGE_TIMEOUT_S", 0.5)
    thread = ServerThread(write_config(tmp_path))
    running = thread.start()
    hung = asyncio.Event()  # never set: the store monitor's stop waits on it forever

    async def stuck() -> None:
        await hung.wait()

    thread.server.store_monitor.stop = stuck
    caplog.set_level("INFO", logger="modelyard")
    started = time.monotonic()
    thread.stop()
    took = time.monotonic() - started
    assert took < 5.0, f"stop took {took:.1f} s with one stage hung"
    assert any("shutdown: health did not finish within" in r.getMessage() for r in caplog.records)
    # the stages after the hung one ran: the gRPC server no longer answers and the store is closed
    with grpc.insecure_channel(running.address) as ch, pytest.raises(grpc.RpcError):
        _route(ch)
    assert thread.server.app.store._thread is None
