"""`modelyard bench replay|catalog` end to end on generated tables (in process and over gRPC)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.cli.main import main
from modelyard.config import load_config
from modelyard.replay.catalog import Settings
from modelyard.replay.drift import run_drift
from modelyard.replay.table import load_table

POLICIES = {"modelyard", "random", "cheapest", "strongest", "best-single", "cascade", "oracle"}


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["bench", "replay", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_shape(synthetic_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, str(synthetic_table), "--attempts", "3", "--orders", "3", "--seed", "5")
    assert set(doc) == {"policies"} and set(doc["policies"]) == POLICIES
    for row in doc["policies"].values():
        assert set(row) == {"solved_share", "cost_per_solved", "mean_attempts"}
        assert 0 <= row["solved_share"] <= 1 and 1 <= row["mean_attempts"] <= 3


def test_seeded_run_is_reproducible(synthetic_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = (str(synthetic_table), "--attempts", "1,3", "--orders", "2", "--seed", "11")
    assert _json(capsys, *args) == _json(capsys, *args)


def test_est_tokens_change_only_what_the_router_is_told(synthetic_table: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = (str(synthetic_table), "--attempts", "1", "--orders", "3", "--seed", "2")
    default = _json(capsys, *base)
    same = _json(capsys, *base, "--est-tokens", "100000,50000")
    high = _json(capsys, *base, "--est-tokens", "2000000,1000000")
    assert same == default
    # The table decides success and cost: every baseline is untouched, and the router still routes.
    assert {k: v for k, v in high["policies"].items() if k != "modelyard"} == \
        {k: v for k, v in default["policies"].items() if k != "modelyard"}
    assert 0 < high["policies"]["modelyard"]["solved_share"] <= 1


@pytest.mark.parametrize("bad", ["100000", "a,b", "0,5", "1,2,3"])
def test_bad_est_tokens_name_the_flag_and_the_form(synthetic_table: Path, bad: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "replay", str(synthetic_table), "--est-tokens", bad]) != 0
    err = capsys.readouterr().err
    assert "--est-tokens" in err and "IN,OUT" in err and bad in err


def test_text_report_and_plot(synthetic_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    assert main(["bench", "replay", str(synthetic_table), "--orders", "2", "--plot", str(png), "--drift"]) == 0
    out = capsys.readouterr().out
    assert "| modelyard |" in out and "Drift (K=3)" in out
    assert png.stat().st_size > 1000


def test_drift_reports_the_degraded_model(synthetic_table: Path) -> None:
    t = load_table(synthetic_table)
    d = run_drift(t, 1, Settings(), [0, 1])
    assert d.model == "cheap-good" and d.restarted_cps > 0 and d.second_half_cps > 0


def test_catalog_is_a_valid_server_config(synthetic_table: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_KEY", "bench-test-key-0123456789abcdef")
    assert main(["bench", "catalog", str(synthetic_table), "--key-env", "BENCH_KEY",
                 "--db", str(tmp_path / "b.db")]) == 0
    cfg_path = tmp_path / "bench.yaml"
    cfg_path.write_text(capsys.readouterr().out)
    cfg = load_config(cfg_path)
    assert sorted(m.id for m in cfg.models) == sorted(load_table(synthetic_table).models)


def test_replay_over_grpc(synthetic_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import ServerThread

    monkeypatch.setenv("BENCH_KEY", "bench-test-key-0123456789abcdef")
    assert main(["bench", "catalog", str(synthetic_table), "--key-env", "BENCH_KEY",
                 "--db", str(tmp_path / "b.db")]) == 0
    cfg_path = tmp_path / "bench.yaml"
    cfg_path.write_text(capsys.readouterr().out)
    thread = ServerThread(cfg_path)
    running = thread.start()
    try:
        doc = _json(capsys, str(synthetic_table), "--orders", "1", "--grpc", running.address,
                    "--key-env", "BENCH_KEY")
    finally:
        thread.stop()
    ours = doc["policies"]["modelyard"]
    assert ours["solved_share"] >= 0.5 and ours["cost_per_solved"] < doc["policies"]["strongest"]["cost_per_solved"]
