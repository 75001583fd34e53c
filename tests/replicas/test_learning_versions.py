"""Replicas share learning through Redis: one contribution this build cannot read (a newer
release's snapshot version during a rolling upgrade) is skipped, and the rest still syncs."""

from __future__ import annotations

import logging

import pytest

from modelyard.learning_sync import LearningSync, SyncedCore
from modelyard.store import RedisStore
from tests.core.test_learning import CATALOG
from tests.redis_fixtures import RedisServer


async def test_an_unreadable_contribution_is_skipped_and_the_others_still_merge(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisStore(redis_server.url, key_prefix="versions")
    await store.open()
    try:
        cores = {name: SyncedCore(CATALOG) for name in ("a", "b")}
        syncs = {name: LearningSync(store, lambda n=name: {"": cores[n]}, lambda key: "core",  # type: ignore[misc]
                                    replica=name, interval_s=60) for name in cores}
        cores["b"].report(model="other", role=2, task_class="edit", status=1, now=1000.0, input_tokens=9000,
                          cached_input_tokens=0, output_tokens=600, latency_ms=1200.0)
        await syncs["b"].sync_all()
        future = b"MYRCORE\0" + (99).to_bytes(4, "little") + b"\0" * 40
        await store.save_contribution("core", "replica-of-a-newer-release", future)
        with caplog.at_level(logging.WARNING, logger="modelyard.learning"):
            await syncs["a"].sync_all()
        assert [a.model for a in cores["a"].arms()] == ["other"]  # b's report arrived
        assert cores["a"].local.arms() == []  # and stays b's, not a's own contribution
        assert "unsupported version 99" in caplog.text
    finally:
        await store.close()
