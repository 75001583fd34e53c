"""What the stores keep of a decision (store.proto StoredDecision): the answer as sent and what the
outcome is learned with, read back exactly; rows an earlier release wrote as JSON still read."""

from __future__ import annotations

import pytest

from modelyard import convert
from modelyard.domain import BudgetView, CandidateView, Decision, ModelChoice
from modelyard.v1 import store_pb2

# A decision row's payload as the release before store.proto wrote it (Rust front, SQLite store).
JSON_ROW = (
    b'{"decision_id":"01a22b80de5cd65d027f2371c219effd","cost_usd":0.00092,"success_probability":0.42,'
    b'"latency_ms":9911.764705882353,"cost_per_success_usd":0.0021904761904761906,"reserved_usd":0.00092,'
    b'"budget_remaining_usd":999999.64948,"exploration":false,"sticky":false,"reason":"tiny-coder has the '
    b'lowest score","reservation_expires_at":1796026795,"replayed":false,"est_input_tokens":12000,'
    b'"est_output_tokens":800,"est_cached_input_tokens":0,"attempt":2,"failed_effort":0.75,'
    b'"model":{"model_id":"tiny-coder","provider":"testco","endpoint":"testco","upstream_model":"tiny-coder"},'
    b'"fallbacks":[{"model_id":"mid-coder","provider":"testco","endpoint":"testco","upstream_model":"mid-coder"}],'
    b'"candidates":[],"budgets":[{"scope":"tenant","subject":"acme","window":1,"hard_usd":null,"soft_usd":null,'
    b'"spent_usd":0.0,"reserved_usd":0.3496,"remaining_usd":null,"resets_at":"2026-11-30T09:00:00Z"},'
    b'{"scope":"tenant","subject":"acme","window":2,"hard_usd":1000000.0,"soft_usd":900000.0,"spent_usd":0.0,'
    b'"reserved_usd":0.3496,"remaining_usd":999999.6504,"resets_at":"2026-12-01T00:00:00Z"}]}'
)


def _decision(**kw: object) -> Decision:
    base: dict[str, object] = dict(
        decision_id="01a22b80de5cd65d027f2371c219effd",
        model=ModelChoice("tiny-coder", "testco", "eu", "tiny-coder-2025"),
        fallbacks=(ModelChoice("mid-coder", "testco", "eu", "mid"), ModelChoice("big-coder", "bigco", "us", "big")),
        cost_usd=0.00092, success_probability=0.42, latency_ms=9911.764705882353,
        cost_per_success_usd=0.0021904761904761906, reserved_usd=0.00092, budget_remaining_usd=12.5,
        exploration=True, sticky=False, reason="tiny-coder has the lowest score — explored",
        reservation_expires_at=1796026795,
        candidates=(
            CandidateView("tiny-coder", False, "", "", 0.00092, 0.42, 0.51, 9911.7, 0.0022, 13.5, 0.3, 0.55),
            CandidateView("big-coder", True, "max_cost", "costs $0.40, over max_cost_usd $0.10",
                          0.4, 0.8, 0.8, 20000.0, 0.5, 0.0, 0.1, 0.99),
        ),
        budgets=(
            BudgetView("tenant", "acme", 1, None, None, 0.0, 0.3496, None, "2026-11-30T09:00:00Z"),
            BudgetView("tenant", "acme", 2, 50.0, 40.0, 37.1, 0.4, 12.5, "2026-12-01T00:00:00Z"),
            BudgetView("key", "acme-ci", 3, 10.0, None, 0.0, 0.0, 10.0, "2026-12-01T00:00:00Z"),
        ),
        est_input_tokens=12_000, est_output_tokens=800, est_cached_input_tokens=4_000,
        attempt=3, failed_effort=-0.25,
    )
    base.update(kw)
    return Decision(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("failed_effort", [-0.25, 0.0, None])
def test_a_stored_decision_reads_back_as_the_answer_it_was_and_what_it_learns_with(
        failed_effort: float | None) -> None:
    d = _decision(failed_effort=failed_effort)
    back = convert.decision_from_stored(convert.stored_decision(d))
    assert back == d  # every field, the absent limits and efforts as None
    assert convert.decision(back) == convert.decision(d)


def test_the_stored_answer_is_never_marked_replayed_and_its_replay_is() -> None:
    d = _decision()
    stored = convert.stored_decision(d.as_replay())
    assert store_pb2.StoredDecision.FromString(stored).decision.replayed is False
    again = convert.decision_from_stored(stored).as_replay()
    expected = convert.decision(d)
    expected.replayed = True
    assert convert.decision(again) == expected


def test_rows_written_as_json_by_an_earlier_release_still_read() -> None:
    d = convert.decision_from_stored(JSON_ROW)
    assert (d.decision_id, d.model.model_id, d.attempt, d.failed_effort) == (
        "01a22b80de5cd65d027f2371c219effd", "tiny-coder", 2, 0.75)
    assert (d.est_input_tokens, d.est_output_tokens, d.budgets[1].hard_usd) == (12_000, 800, 1_000_000.0)
    # Rewritten in the new form it is the same decision, in well under half the bytes.
    new = convert.stored_decision(d)
    assert convert.decision_from_stored(new) == d
    assert len(new) < len(JSON_ROW) / 2, (len(new), len(JSON_ROW))
