"""`modelyard simulate`: run the simulated OpenAI-compatible provider until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="run a simulated OpenAI-compatible provider (for tests and benchmarks)")
    p.add_argument("--listen", default="127.0.0.1:8400", help="HOST:PORT to serve on (port 0 picks a free one)")
    p.add_argument("--table", help="outcome table CSV to replay (task_id, model, success, cost_usd, ...)")
    p.add_argument("--profiles", help="YAML/JSON model profiles: {default: {...}, models: {name: {...}}}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every simulated latency by this")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    from modelyard.cli.commands import CliError
    from modelyard.simulate import Simulator, load_profiles, load_table, start

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--listen: expected HOST:PORT, got '{args.listen}'")
    try:
        default, models = load_profiles(args.profiles)
        table = load_table(args.table) if args.table else {}
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(f"cannot load simulator input: {exc}") from exc
    sim = Simulator(seed=args.seed, default=default, profiles=models, table=table, time_scale=args.time_scale)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def main() -> None:
        runner, bound = await start(sim, host, int(port))
        print(f"simulated provider on http://{host}:{bound}/v1 ({len(table)} table rows, seed {args.seed})", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
    return 0
