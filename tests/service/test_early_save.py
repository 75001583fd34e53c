"""Learned changes are saved before the save interval is up once they pile up (app.EARLY_SAVE_ARMS):
a drift alarm that forgets a model's evidence in every class changes one arm per class at once, and
until saved those changes sit in memory (the 1M-arm peak, bench/README twelfth session)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modelyard import app as app_module
from modelyard.app import SHARED, App
from modelyard.core import RoutingCore
from tests.helpers import ServerThread, write_config


def _teach(core: RoutingCore, classes: int) -> None:
    now = time.time()
    for c in range(classes):
        core.report(model="tiny-coder", role=2, task_class=f"early-{c}", status=1, input_tokens=1000,
                    cached_input_tokens=0, output_tokens=100, latency_ms=500.0, now=now)


def _server_saving_only_when_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServerThread:
    """A server with no periodic save and no background check: the test calls the check itself."""
    monkeypatch.setattr(app_module, "STATE_SAVE_INTERVAL_S", 3600.0)
    monkeypatch.setattr(app_module, "EARLY_SAVE_CHECK_S", 3600.0)
    thread = ServerThread(write_config(tmp_path))
    thread.start()
    return thread


def test_changes_past_the_bound_are_saved_at_once_and_fewer_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    thread = _server_saving_only_when_told(tmp_path, monkeypatch)
    try:
        app = thread.app
        core = app.core_for(SHARED)
        name = App._state_name(SHARED)
        thread.call(app.save_state())  # whatever start-up changed is saved: a clean start
        _teach(core, 40)
        pending = core.pending_changes()
        # Each report changes the model's, the (model, role)'s and the class's arm: 40 classes,
        # 42 arms (the first two are shared).
        assert pending == 42, pending
        entries_before = thread.call(app.store.state_sizes(name))[1]

        monkeypatch.setattr(app_module, "EARLY_SAVE_ARMS", 43)
        thread.call(app._save_if_large())  # under the bound: they wait for the periodic save
        assert core.pending_changes() == pending
        assert thread.call(app.store.state_sizes(name))[1] == entries_before

        monkeypatch.setattr(app_module, "EARLY_SAVE_ARMS", 42)
        thread.call(app._save_if_large())  # at the bound: saved now
        assert core.pending_changes() == 0
        base, entries, _ = thread.call(app.store.state_sizes(name))
        assert base > 0 and entries == entries_before + 1  # appended as a delta after the base
    finally:
        thread.stop()

    # What the early save wrote is what a restart restores.
    again = ServerThread(write_config(tmp_path))
    again.start()
    try:
        restored = again.app.core_for(SHARED)
        assert {c.task_class for c in restored.arms() if c.task_class.startswith("early-")} == {
            f"early-{c}" for c in range(40)}
    finally:
        again.stop()


def test_a_failing_store_is_not_retried_at_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes a failed save gives back stay pending: the early save must not hammer the store (and
    the log) every 0.1 s; the periodic save retries."""
    thread = _server_saving_only_when_told(tmp_path, monkeypatch)
    try:
        app = thread.app
        _teach(app.core_for(SHARED), 5)
        monkeypatch.setattr(app_module, "EARLY_SAVE_ARMS", 1)
        calls = []

        async def down() -> None:
            calls.append(1)
            raise OSError("the store is down")

        monkeypatch.setattr(app, "save_state", down)
        with pytest.raises(OSError):
            thread.call(app._save_if_large())
        for _ in range(3):
            thread.call(app._save_if_large())  # within the back-off: not tried again
        assert len(calls) == 1
        monkeypatch.setattr(app, "_no_early_save_until", 0.0)  # the back-off over
        with pytest.raises(OSError):
            thread.call(app._save_if_large())
        assert len(calls) == 2
    finally:
        monkeypatch.undo()
        thread.stop()
