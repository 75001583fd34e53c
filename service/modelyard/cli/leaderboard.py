"""`modelyard leaderboard --server ADDRESS`: what a running router has learned, per role and task class.

For each (role, task class) with evidence: every model's learned success with its 90 % interval,
cost per finished job (expected cost / P(success)), latency and evidence, from
Catalog.ListModels(include_estimates); then the same columns as Catalog.Estimate scores them for
that role and class (the live scoring path, including models without evidence there).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from modelyard.domain import ROLE_NAMES


def register(sub: Any, server_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("leaderboard", help="learned success, cost per finished job and latency per model")
    server_args(p)
    p.add_argument("--role", help="only this role (e.g. executor)")
    p.add_argument("--task-class", help="only this task class")
    p.add_argument("--input-tokens", type=int, default=0, help="step estimate for Estimate (0: configured)")
    p.add_argument("--output-tokens", type=int, default=0)
    p.add_argument("--top", type=int, default=0, help="show only the N best models per group (0: all)")
    p.set_defaults(fn=leaderboard)


def _row(model: str, p: float, lo: float, hi: float, cps: float, lat: float, ev: float) -> str:
    return f"  {model:<28} {p:6.1%} [{lo:6.1%} - {hi:6.1%}]  ${cps:>9.4f}  {lat / 1000:8.1f} s  {ev:8.1f}"


HEADER = (f"  {'model':<28} {'success [90 % interval]':>25}  {'$/finished':>10}  {'latency':>10}  "
          f"{'evidence':>8}")


def _learned(models: Any, role: str | None, cls: str | None) -> dict[tuple[int, str], list[tuple]]:
    groups: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for m in models:
        for e in m.estimates:
            if (role and ROLE_NAMES.get(e.role) != role) or (cls and e.task_class != cls):
                continue
            groups[(e.role, e.task_class)].append((e.cost_per_success_usd, m.model_id, e.success_probability,
                                                   e.success_low, e.success_high, e.latency_ms, e.evidence))
    return groups


def leaderboard(args: argparse.Namespace) -> int:
    from modelyard.cli.commands import CliError, api_key
    from modelyard.client import Client, ModelyardError

    with Client(args.server, api_key(args)) as client:
        try:
            listed = client.list_models(include_estimates=True)
            groups = _learned(listed.models, args.role, args.task_class)
            if not groups:
                print("no learned estimates yet (report outcomes first)")
                return 0
            for (role, cls), rows in sorted(groups.items()):
                rows.sort()
                shown = rows[: args.top] if args.top else rows
                print(f"{ROLE_NAMES.get(role, role)} / {cls or '(all classes)'} — Catalog.ListModels")
                print(HEADER)
                for cps, model, p, lo, hi, lat, ev in shown:
                    print(_row(model, p, lo, hi, cps, lat, ev))
                if not cls:
                    print()
                    continue
                est = client.estimate(ROLE_NAMES.get(role, "executor"), cls, est_input_tokens=args.input_tokens,
                                      est_output_tokens=args.output_tokens)
                print(f"{ROLE_NAMES.get(role, role)} / {cls} — Catalog.Estimate")
                print(HEADER)
                # By cost per finished job, like the section above (the router itself ranks by its
                # score, which adds the tenant's time value of the wait).
                cands = sorted((c for c in est.candidates if not c.excluded),
                               key=lambda c: c.expected.cost_per_success_usd)
                for c in cands[: args.top] if args.top else cands:
                    e = c.expected
                    print(_row(c.model_id, e.success_probability, c.success_low, c.success_high,
                               e.cost_per_success_usd, e.latency_ms, c.evidence))
                print()
        except ModelyardError as exc:
            raise CliError(str(exc)) from exc
    return 0
