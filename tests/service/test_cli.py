"""The `modelyard` command line: keys, config checks, the price table and a routed decision."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from modelyard.cli.main import main
from modelyard.config import load_config
from tests.helpers import RunningServer, key_for

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.yaml"


def test_keys_new_prints_a_key_and_the_config_line_with_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--tenant", "acme", "--scopes", "route,report", "--id", "ci-key"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"^\s+(my_\S+)$", out, re.M)
    assert key, out
    line = yaml.safe_load(out[out.index("- {"):])[0]
    assert line == {"id": "ci-key", "sha256": hashlib.sha256(key.group(1).encode()).hexdigest(),
                    "scopes": ["route", "report"]}


def test_keys_new_rejects_unknown_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--tenant", "acme", "--scopes", "route,superuser"]) == 2
    assert "superuser" in capsys.readouterr().err


def test_check_config_accepts_the_example_and_names_the_field_of_a_bad_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = yaml.safe_load(EXAMPLE.read_text())
    bad["models"][0]["context_window"] = -5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "models[0].context_window" in err


def test_prices_shows_total_and_active_parameters_and_unpublished_prices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    cfg = load_config(EXAMPLE)
    for m in cfg.models:
        assert m.id in out
    mai = next(line for line in out.splitlines() if line.startswith("mai-code-1-flash"))
    assert "137B total / 5B active" in mai and "licensed-data" in mai
    unpriced = [m for m in cfg.models if not m.price.priced]
    assert unpriced and all("n/p" in next(ln for ln in out.splitlines() if ln.startswith(m.id)) for m in unpriced)


def test_route_prints_the_decision_and_every_candidate(
        server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MODELYARD_API_KEY", key_for("admin"))
    assert main(["route", "--server", server.address, "--role", "executor", "--task-class", "cli/test"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("decision ") and "fallbacks" in out
    for model in ("tiny-coder", "mid-coder", "big-coder", "licensed-coder"):
        assert model in out


def test_route_without_a_key_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MODELYARD_API_KEY", raising=False)
    assert main(["route", "--server", "127.0.0.1:9"]) == 2
    assert "MODELYARD_API_KEY" in capsys.readouterr().err


ROW = re.compile(r"^\s+(\S+)\s+([\d.]+)% \[\s*([\d.]+)% -\s*([\d.]+)%\]\s+\$\s*([\d.]+)\s+([\d.]+) s\s+([\d.]+)$")


def test_leaderboard_shows_learned_and_live_estimates_each_with_its_interval(
        fresh_server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import uuid

    import grpc

    from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
    from tests.conftest import auth

    monkeypatch.setenv("MODELYARD_API_KEY", key_for("admin"))
    task = types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="lb/test", est_input_tokens=20_000,
                                 est_output_tokens=1_500)
    with grpc.insecure_channel(fresh_server.address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        for i in range(24):
            d = stub.Route(router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id=f"lb-{i}", task=task,
                                                   explore=False),  # greedy: some models stay unseen
                           metadata=auth(), timeout=5)
            stub.ReportOutcome(router_pb2.OutcomeReport(
                decision_id=d.decision_id, status=types_pb2.OUTCOME_STATUS_SUCCESS if i % 4 else
                types_pb2.OUTCOME_STATUS_FAILURE, latency_ms=900,
                usage=types_pb2.Usage(input_tokens=18_000, output_tokens=1_200)), metadata=auth(), timeout=5)
    assert main(["leaderboard", "--server", fresh_server.address, "--task-class", "lb/test"]) == 0
    out = capsys.readouterr().out
    learned, _, live = out.partition("Catalog.Estimate")
    assert "executor / lb/test — Catalog.ListModels" in learned and live
    rows = {name: [ROW.match(line) for line in part.splitlines() if ROW.match(line)]
            for name, part in (("learned", learned), ("live", live))}
    assert rows["learned"] and len(rows["live"]) == 4, out
    for m in rows["learned"] + rows["live"]:
        p, lo, hi = float(m[2]), float(m[3]), float(m[4])
        assert lo <= p <= hi, m[0]
    for part in rows.values():  # both sections rank by cost per finished job
        costs = [float(m[5]) for m in part]
        assert costs == sorted(costs), out
    # A model the class never saw still gets its prior's uncertainty, not a zero-width interval;
    # the one with the most evidence is the surest.
    live_rows = sorted(rows["live"], key=lambda m: float(m[7]))
    unseen, most = live_rows[0], live_rows[-1]
    assert float(unseen[7]) == 0.0 and float(unseen[4]) - float(unseen[3]) > 30, unseen[0]
    assert float(most[4]) - float(most[3]) < float(unseen[4]) - float(unseen[3])


def test_budget_shows_spend_reservations_and_what_is_left(
        fresh_server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard.client import Client

    monkeypatch.setenv("MODELYARD_API_KEY", key_for("admin"))
    with Client(fresh_server.address, key_for("admin")) as client, client.job("budget/cli") as job:
        done = job.route("executor", est_input_tokens=20_000, est_output_tokens=1_500)
        charged = done.report("success", input_tokens=20_000, output_tokens=1_500).charged_usd
        open_step = job.route("executor", est_input_tokens=20_000, est_output_tokens=1_500)  # left unreported
    assert main(["budget", "--server", fresh_server.address]) == 0
    out = capsys.readouterr().out
    [day] = [line for line in out.splitlines() if line.startswith("tenant acme") and " day " in line]
    cells = day.split()
    # tenant acme  day  $50.00  $40.00  spent  reserved  remaining  resets
    assert cells[3:5] == ["$50.00", "$40.00"], day
    spent, reserved, left = (float(c.lstrip("$")) for c in cells[5:8])
    assert spent == pytest.approx(charged, abs=1e-4) and reserved == pytest.approx(open_step.decision.reserved_usd,
                                                                                   abs=1e-4)
    assert left == pytest.approx(50 - spent - reserved, abs=0.006)  # shown to the cent above $1
    assert any(line.startswith("key acme-admin") for line in out.splitlines()), out


def test_budget_past_the_soft_limit_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard.client import Client
    from tests.helpers import ServerThread, write_config

    path = write_config(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["tenants"][0]["budgets"] = {"day": {"soft_usd": 0.01, "hard_usd": 50}}
    path.write_text(yaml.safe_dump(cfg))
    thread = ServerThread(path)
    running = thread.start()
    try:
        monkeypatch.setenv("MODELYARD_API_KEY", key_for("admin"))
        with Client(running.address, key_for("admin")) as client, client.job("budget/soft") as job:
            job.route("executor", est_input_tokens=20_000, est_output_tokens=1_500).report(
                "success", input_tokens=200_000, output_tokens=20_000)
        assert main(["budget", "--server", running.address]) == 0
        out = capsys.readouterr().out
        assert "past the soft limit" in out, out
    finally:
        thread.stop()
