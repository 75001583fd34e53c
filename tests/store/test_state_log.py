"""A single node's learned state through SQLite as a base and a log of changes (state_log.py): what a
restart restores is what the core had learned, whichever saves were bases and which were appends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelyard import state_log
from modelyard.core import RoutingCore
from modelyard.state_log import IncrementalState, StateSaves
from modelyard.store import SqliteStore, StoreUnavailable
from modelyard.store.fail_open import FailOpenStore
from tests.core.test_learning import CATALOG
from tests.replicas.test_learning_sync import table, teach

NAME = "core"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


async def _restored(store: SqliteStore) -> RoutingCore:
    core = RoutingCore(CATALOG)
    await StateSaves(store).restore(NAME, core)
    return core


async def test_appends_after_a_base_restore_to_the_same_arms(store: SqliteStore) -> None:
    assert isinstance(store, IncrementalState)
    assert isinstance(FailOpenStore(store, cap_micros=0), IncrementalState)  # the wrapper delegates
    core, saves = RoutingCore(CATALOG), StateSaves(store)
    assert not await saves.restore(NAME, core)  # nothing stored: it starts recording anyway
    teach(core, 5, task_class="edit")
    await saves.save(NAME, core, 1.0)  # the first save is a base
    for i, (cls, model, status) in enumerate([("edit", "m", 2), ("plan", "m", 1), ("edit", "other", 1)]):
        teach(core, 3, task_class=cls, model=model, status=status, now=2000.0 + i)
        await saves.save(NAME, core, 2.0 + i)
    await saves.save(NAME, core, 9.0)  # nothing new: nothing written
    assert (saves.bases, saves.appends) == (1, 3)
    base, entries, size = await store.state_sizes(NAME)
    assert base > 0 and entries == 3 and size > 0
    again = await _restored(store)
    assert table(again) == table(core)

    # The restored core records its own changes: they append to the same log.
    teach(again, 2, task_class="review", now=3000.0)
    later = StateSaves(store)
    await later.restore(NAME, RoutingCore(CATALOG))  # learns the sizes
    await later.save(NAME, again, 10.0)
    assert (later.bases, later.appends) == (0, 1)
    assert table(await _restored(store)) == table(again)


async def test_a_grown_log_is_folded_into_a_new_base(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_log, "LOG_MIN_BYTES", 0)
    monkeypatch.setattr(state_log, "LOG_MAX_ENTRIES", 3)
    core, saves = RoutingCore(CATALOG), StateSaves(store)
    await saves.restore(NAME, core)
    for i in range(8):
        teach(core, 2, task_class=f"class-{i}", now=1000.0 + i)
        await saves.save(NAME, core, float(i))
    assert saves.bases >= 2  # the first, and at least one when the log passed 3 entries
    _, entries, _ = await store.state_sizes(NAME)
    assert entries < 3
    assert table(await _restored(store)) == table(core)


async def test_a_failed_save_makes_the_next_one_a_base(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    core, saves = RoutingCore(CATALOG), StateSaves(store)
    await saves.restore(NAME, core)
    teach(core, 3)
    await saves.save(NAME, core, 1.0)
    for i, method in enumerate(("append_state_log", "save_state_base")):
        teach(core, 4, task_class=f"plan-{i}")
        if method == "save_state_base":
            monkeypatch.setattr(state_log, "LOG_MAX_ENTRIES", 0)  # this save is a base

        async def down(*_args: object) -> object:
            raise StoreUnavailable("disk gone")

        with monkeypatch.context() as m:
            m.setattr(store, method, down)
            with pytest.raises(StoreUnavailable):
                await saves.save(NAME, core, 2.0 + i)
        monkeypatch.setattr(state_log, "LOG_MAX_ENTRIES", 5_000)
        bases = saves.bases
        await saves.save(NAME, core, 3.0 + i)  # the failed save took the changes with it: a base now
        assert saves.bases == bases + 1
        assert table(await _restored(store)) == table(core)


async def test_changes_across_a_new_weighting_epoch_restore_the_same(store: SqliteStore) -> None:
    """Learning decays with a half-life: changes saved after the core moved to a later epoch (its sums
    rescaled) must still add up to what the core holds."""
    core, saves = RoutingCore(CATALOG), StateSaves(store)
    await saves.restore(NAME, core)
    teach(core, 6, now=1000.0)
    teach(core, 2, status=2, task_class="plan", now=1000.0)
    await saves.save(NAME, core, 1.0)
    month = 30 * 86_400.0
    for i, now in enumerate((1000.0 + month, 1000.0 + 3 * month)):
        teach(core, 3, status=1 + i % 2, now=now)
        await saves.save(NAME, core, 2.0 + i)
    assert saves.appends == 2
    got, want = table(await _restored(store)), table(core)
    assert got.keys() == want.keys()
    for key, sums in want.items():
        assert got[key] == pytest.approx(sums, rel=1e-6, abs=2e-9), key
