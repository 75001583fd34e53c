"""`modelyard bench replay|catalog`: replay routing policies on a per-task outcome table.

    modelyard bench replay TABLE --attempts 3 --orders 10 --seed 0 [--json] [--plot out.png] [--drift]
    modelyard bench replay TABLE --est-tokens 2000000,1000000     # a harness whose estimates run 20x high
    modelyard bench catalog TABLE > bench.yaml          # then: modelyard serve --config bench.yaml
    modelyard bench replay TABLE --grpc 127.0.0.1:50061 --key-env MODELYARD_API_KEY

Tables are read from their path and never copied; see service/modelyard/replay/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from modelyard.replay.report import Summary


def register(sub: Any) -> None:
    bench = sub.add_parser("bench", help="replay routing policies on an outcome table")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    p = bsub.add_parser("replay", help="modelyard against baselines on a per-task x per-model table")
    p.add_argument("table", help="CSV with task_id, task_group, model, success, cost_usd …")
    p.add_argument("--attempts", default="3", help="K attempts per task; a comma list runs each (e.g. 1,3)")
    p.add_argument("--orders", type=int, default=10, help="random arrival orders (medians are reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help='print {"policies": {NAME: {...}}} only')
    p.add_argument("--plot", help="write the learning curves as a PNG (needs matplotlib)")
    p.add_argument("--drift", action="store_true", help="also run the drift scenario")
    p.add_argument("--est-tokens", metavar="IN,OUT",
                   help="the step estimate the harness sends with every Route, input and output tokens "
                        "(default 100000,50000); e.g. 2000000,1000000 replays a harness whose estimates "
                        "run 20x high (in process only)")
    p.add_argument("--grpc", metavar="ADDRESS", help="replay modelyard through a live server")
    p.add_argument("--key-env", default="MODELYARD_API_KEY", help="env variable holding the API key")
    p.set_defaults(fn=replay_cmd)
    p = bsub.add_parser("catalog", help="print a server config whose catalog matches the table")
    p.add_argument("table")
    p.add_argument("--key-env", default="MODELYARD_API_KEY",
                   help="hash this env variable's key into the config (a new key is printed if unset)")
    p.add_argument("--db", default="./modelyard-bench.db", help="SQLite file of the bench server")
    p.set_defaults(fn=catalog_cmd)


def _ks(text: str) -> list[int]:
    from modelyard.cli.commands import CliError
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise CliError(f"--attempts: expected integers like 3 or 1,3, got {text!r}") from exc
    if not ks or min(ks) < 1:
        raise CliError("--attempts: every K must be ≥ 1")
    return ks


def parse_est_tokens(text: str | None) -> tuple[int, int] | None:
    """`--est-tokens IN,OUT` (None when not given); a CliError that names the flag otherwise."""
    from modelyard.cli.commands import CliError
    if text is None:
        return None
    parts = [x.strip() for x in text.split(",")]
    try:
        est = tuple(int(x) for x in parts)
    except ValueError as exc:
        raise CliError(f"--est-tokens: expected two token counts IN,OUT like 100000,50000, got {text!r}") from exc
    if len(est) != 2 or min(est) < 1:
        raise CliError(f"--est-tokens: expected two token counts IN,OUT, each >= 1, like 100000,50000; got {text!r}")
    return est[0], est[1]


def _router_factory(args: argparse.Namespace, table: Any) -> Any:
    if not args.grpc:
        from modelyard.replay.runner import InProcess
        return InProcess
    from modelyard.cli.commands import CliError
    from modelyard.replay.remote import Remote, connect
    key = os.environ.get(args.key_env)
    if not key:
        raise CliError(f"--grpc needs an API key in ${args.key_env} (see `modelyard bench catalog`)")
    client = connect(args.grpc, key)
    stamp = f"r{int(time.time())}"
    counter = iter(range(1_000_000))
    return lambda tbl, s: Remote(client, tbl, s, f"{stamp}-{next(counter)}")


def run_k(table: Any, k: int, seeds: list[int], factory: Any, settings: Any) -> dict[str, Summary]:
    from modelyard.replay.baselines import baselines
    from modelyard.replay.report import summarise
    from modelyard.replay.runner import arrival_order, replay

    orders = [arrival_order(table.n, s) for s in seeds]
    ours = [(replay(table, factory(table, settings), o, k, settings, s), o) for s, o in zip(seeds, orders, strict=True)]
    out = {"modelyard": summarise(ours)}
    for name, runs in baselines(table, k, seeds).items():
        pairs = [(runs[i], o) for i, o in enumerate(orders)] if len(runs) > 1 else [(runs[0], o) for o in orders]
        out[name] = summarise(pairs)
    return out


def replay_cmd(args: argparse.Namespace) -> int:
    from modelyard.cli.commands import CliError
    from modelyard.replay.catalog import Settings
    from modelyard.replay.report import as_json, plot
    from modelyard.replay.table import load_table

    if not os.path.exists(args.table):
        raise CliError(f"{args.table}: no such file")
    est = parse_est_tokens(args.est_tokens)
    if est is not None and args.grpc:
        raise CliError("--est-tokens: in process only; a live server's catalog sets its own default_tokens "
                       "(write it with `modelyard bench catalog` and edit routing.default_tokens)")
    settings = Settings() if est is None else Settings(est_tokens=est)
    # The cold-start list-price order (the cheapest baseline) stays at the default step size.
    table = load_table(args.table, priced_tokens=Settings().est_tokens)
    seeds = [args.seed + i for i in range(max(1, args.orders))]
    factory = _router_factory(args, table)
    started = time.perf_counter()
    results = {k: run_k(table, k, seeds, factory, settings) for k in _ks(args.attempts)}
    drift = {}
    if args.drift:
        from modelyard.replay.drift import run_drift
        drift = {k: run_drift(table, k, settings, seeds, factory) for k in results}
    elapsed = time.perf_counter() - started
    if args.plot:
        try:
            plot({f"{table.name}, K={k} ({len(seeds)} orders)": r for k, r in results.items()}, args.plot)
        except RuntimeError as exc:
            raise CliError(str(exc)) from exc
    if args.json:
        if len(results) == 1:
            doc: dict[str, Any] = as_json(next(iter(results.values())))
        else:
            doc = {"attempts": {str(k): as_json(r) for k, r in results.items()}}
        if drift:
            doc["drift"] = {str(k): {"model": d.model, "tasks_to_move": d.tasks_to_move,
                                     "second_half_cost_per_solved": round(d.second_half_cps, 5),
                                     "restarted_cost_per_solved": round(d.restarted_cps, 5)}
                            for k, d in drift.items()}
        json.dump(doc, sys.stdout, indent=1)
        print()
        return 0
    _print_text(table, results, drift, len(seeds), elapsed, args)
    return 0


def _print_text(table: Any, results: dict[int, dict[str, Summary]], drift: dict[int, Any], orders: int,
                elapsed: float, args: argparse.Namespace) -> None:
    from modelyard.replay.drift import drift_text
    from modelyard.replay.report import curve_text, table_text

    where = f"server {args.grpc}" if args.grpc else "in process"
    print(f"{table.name}: {table.n} tasks x {len(table.models)} priced models; {orders} orders; {where}; "
          f"{elapsed:.1f} s")
    for note in table.notes:
        print(f"  note: {note}")
    for k, r in results.items():
        print()
        print(table_text(r, f"K={k}"))
        print()
        print(curve_text(r, f"K={k}"))
    for k, d in drift.items():
        print()
        print(drift_text(d, k))


def catalog_cmd(args: argparse.Namespace) -> int:
    from modelyard.auth import hash_key, new_key
    from modelyard.replay.catalog import Settings, server_config
    from modelyard.replay.table import load_table

    settings = Settings()
    table = load_table(args.table, priced_tokens=settings.est_tokens)
    key = os.environ.get(args.key_env)
    if not key:
        key = new_key()
        print(f"# no ${args.key_env}: new key for this config (export {args.key_env}={key})", file=sys.stderr)
    print(server_config(table, settings, hash_key(key), args.db), end="")
    return 0
