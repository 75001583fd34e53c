"""The Rust routing core through its Python binding (modelyard._core)."""

from __future__ import annotations

import json
import threading

import pytest

from modelyard import _core

EXECUTOR = 2
CATALOG = {
    "models": [
        {"id": "cheap", "provider": "p1", "tier": 1, "price_in": 0.1, "price_cached_in": 0.01,
         "price_out": 0.4, "context_window": 32000, "capabilities": ["tools"]},
        {"id": "strong", "provider": "p2", "tier": 3, "price_in": 3.0, "price_cached_in": 0.3,
         "price_out": 15.0, "context_window": 200000, "capabilities": ["tools", "vision"],
         "provenance": ["audited"], "prior_success": 0.9, "prior_strength": 4},
    ],
    "routing": {"half_life_s": 3600, "breaker": {"failures_to_open": 2, "open_s": 10}},
}


@pytest.fixture
def core() -> _core.Core:
    return _core.Core(json.dumps(CATALOG))


def route(core: _core.Core, **kw: object) -> _core.Decision:
    args: dict = {"role": EXECUTOR, "task_class": "edit", "now": 100.0,
                  "est_input_tokens": 1000, "est_output_tokens": 100, "explore": False}
    args.update(kw)
    return core.route(_core.Request(**args))


def test_route_picks_and_explains(core: _core.Core) -> None:
    d = route(core, explain=True)
    assert d.model == "cheap"
    assert d.fallbacks == ["strong"]
    assert [c.model for c in d.candidates] == ["cheap", "strong"]
    assert d.score > 0 and not d.exploration and not d.sticky


@pytest.mark.parametrize(
    ("kwargs", "constraint"),
    [
        ({"capabilities": ["vision"]}, "capabilities"),
        ({"provenance": ["audited"]}, "provenance"),
        ({"denied": ["cheap"]}, "denied"),
        ({"allowed": ["strong"]}, "allowed"),
        ({"min_context": 100000}, "context_window"),
    ],
)
def test_constraints_name_themselves(core: _core.Core, kwargs: dict, constraint: str) -> None:
    d = route(core, explain=True, **kwargs)
    cheap = next(c for c in d.candidates if c.model == "cheap")
    assert cheap.excluded and cheap.constraint == constraint
    assert d.model == "strong"


def test_nothing_eligible(core: _core.Core) -> None:
    d = route(core, provenance=["audited"], max_cost_usd=0.0)
    assert d.model is None
    assert len(d.candidates) == 2
    assert d.reason.startswith("no model satisfies the constraints: provenance excluded 1 (cheap)")


def test_errors_are_core_errors_naming_the_field(core: _core.Core) -> None:
    bad = dict(CATALOG, models=[dict(CATALOG["models"][0], price_out=-1)])
    with pytest.raises(_core.CoreError, match=r"^models\[0\]\.price_out: must be ≥ 0, got -1"):
        _core.Core(json.dumps(bad))
    with pytest.raises(ValueError, match="role"):
        route(core, role=0)
    with pytest.raises(_core.CoreError, match="snapshot"):
        core.restore(b"garbage")


def test_learning_snapshot_merge_and_events(core: _core.Core) -> None:
    # cheap costs 1/32 of strong here, so it keeps the step until its P(success) is well under 1/32
    # of strong's 0.9: after 30 straight failures it is at ~1/32 (a tie), after 60 at ~1/62.
    for _ in range(60):
        core.report(model="cheap", role=EXECUTOR, task_class="edit", status=2, now=100.0,
                    input_tokens=1000, output_tokens=100, latency_ms=900.0)
    assert route(core).model == "strong"
    assert core.arm_count() == 1
    [arm] = core.arms()
    assert arm.model == "cheap" and arm.failures == pytest.approx(60.0)
    data = core.snapshot()
    other = _core.Core(json.dumps(CATALOG))
    other.merge(data)
    assert other.snapshot() == data
    other.restore(data)
    assert other.snapshot() == data
    for _ in range(2):
        core.report(model="strong", role=EXECUTOR, task_class="edit", status=3, now=101.0)
    kinds = {e.kind for e in core.drain_events()}
    assert "breaker_open" in kinds
    assert core.drain_events() == []
    core.complete_job(steps=[("strong", EXECUTOR, "edit")], success=True, now=102.0)


def test_seeded_exploration_is_deterministic(core: _core.Core) -> None:
    a = [route(core, explore=True, seed=s).model for s in range(50)]
    b = [route(core, explore=True, seed=s).model for s in range(50)]
    assert a == b


def test_many_threads_route_and_report_concurrently(core: _core.Core) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for k in range(300):
                d = route(core, explore=True, seed=i * 1000 + k, task_class=f"c{k % 7}")
                assert d.model in ("cheap", "strong")
                core.report(model=d.model, role=EXECUTOR, task_class=f"c{k % 7}",
                            status=1 + (k % 2), now=100.0 + k, output_tokens=50, latency_ms=500.0)
                if k % 50 == 0:
                    core.merge(core.snapshot())
        except BaseException as e:  # surfaced by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 7 <= core.arm_count() <= 14


def test_snapshots_taken_while_another_thread_adds_arms_are_whole(core: _core.Core) -> None:
    """The binding sizes the bytes object first and encodes into it after; arms added in between
    (new classes reported from another thread, the GIL released) must not tear a snapshot."""
    arms = 20_000
    snapshotting = threading.Event()

    def learn() -> None:
        snapshotting.wait(5)  # start while the snapshots are being taken, however busy the machine
        for i in range(arms):
            core.report(model="cheap", role=EXECUTOR, task_class=f"class-{i}", status=1, now=100.0,
                        input_tokens=1000, output_tokens=100, latency_ms=900.0)

    writer = threading.Thread(target=learn)
    writer.start()
    counts = []
    while writer.is_alive() or not counts:
        data = core.snapshot()
        snapshotting.set()
        other = _core.Core(json.dumps(CATALOG))
        other.restore(data)  # a torn or mis-sized snapshot fails to decode
        assert other.snapshot() == data
        counts.append(other.arm_count())
    writer.join()
    assert counts == sorted(counts) and core.arm_count() == arms
    assert len(set(counts)) > 1  # some snapshots were taken while arms were being added


def _learned_core(classes: int) -> _core.Core:
    core = _core.Core(json.dumps(CATALOG))
    for c in range(classes):
        for model, status in (("cheap", 1 + c % 2), ("strong", 1)):
            core.report(model=model, role=EXECUTOR, task_class=f"class-{c}", status=status, now=100.0 + c,
                        input_tokens=1000 + c, output_tokens=100, latency_ms=900.0, cost_usd=0.001 * (c % 7))
    return core


def test_snapshot_files_hold_the_snapshot_bytes_and_restore_like_them(core: _core.Core, tmp_path) -> None:
    learned = _learned_core(3000)  # ~1 MB: the file is written and read through 64 KiB buffers
    path = tmp_path / "state.snap"
    learned.snapshot_to_path(path)
    data = learned.snapshot()
    assert path.read_bytes() == data and len(data) > 1 << 20
    core.restore_path(path)
    assert core.snapshot() == data and core.arm_count() == learned.arm_count()
    shared = _core.Core(json.dumps(CATALOG))
    shared.restore_shared_path(path)
    assert shared.snapshot() == data
    # A file is replaced whole, not overwritten in place.
    _core.Core(json.dumps(CATALOG)).snapshot_to_path(path)
    core.restore_path(path)
    assert core.arm_count() == 0


def test_bad_snapshot_files_are_refused_whole_naming_the_problem(core: _core.Core, tmp_path) -> None:
    learned = _learned_core(50)
    data = learned.snapshot()
    core.restore(data)
    cases = {
        "missing.snap": (None, "cannot read"),
        "short.snap": (data[:5], "shorter than its header"),
        "magic.snap": (b"NOTACORE" + data[8:], "bad magic"),
        "cut.snap": (data[:-100], "corrupt body"),
        "version.snap": (data[:8] + (99).to_bytes(4, "little") + data[12:], "unsupported version 99"),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(_core.CoreError, match=words):
            core.restore_path(path)
        assert core.snapshot() == data, name  # nothing merged from a refused file
    with pytest.raises(_core.CoreError, match="path: cannot create"):
        core.snapshot_to_path(tmp_path / "no-such-dir" / "x.snap")
