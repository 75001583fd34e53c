"""`modelyard` entry point: parses arguments and hands off to one function per subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from modelyard.cli import bench, commands, leaderboard, simulate

DEFAULT_SERVER = "127.0.0.1:50051"


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("MODELYARD_SERVER", DEFAULT_SERVER),
                   help="HOST:PORT of a running modelyard (env MODELYARD_SERVER)")
    p.add_argument("--key-env", default="MODELYARD_API_KEY",
                   help="environment variable holding the API key (default MODELYARD_API_KEY)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelyard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gRPC server")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--listen", help="HOST:PORT (overrides server.listen)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(fn=commands.serve)

    p = sub.add_parser("check-config", help="validate a config file and summarise it")
    p.add_argument("file")
    p.set_defaults(fn=commands.check_config)

    p = sub.add_parser("route", help="ask a running server for one decision and explain it")
    _server_args(p)
    p.add_argument("--role", default="executor")
    p.add_argument("--task-class", default="bugfix/python")
    p.add_argument("--input-tokens", type=int, default=0)
    p.add_argument("--output-tokens", type=int, default=0)
    p.add_argument("--capability", action="append", default=[], help="required capability (repeatable)")
    p.add_argument("--provenance", action="append", default=[], help="required provenance tag (repeatable)")
    p.add_argument("--max-cost", type=float, help="max USD for the step")
    p.add_argument("--job-id", default="")
    p.add_argument("--greedy", action="store_true", help="no exploration")
    p.set_defaults(fn=commands.route)

    p = sub.add_parser("prices", help="the catalog as a table, with expected cost per step")
    p.add_argument("--config", help="read the catalog from this config file")
    p.add_argument("--from-server", action="store_true", help="use a running server's learned estimates")
    _server_args(p)
    p.set_defaults(fn=commands.prices)

    p = sub.add_parser("budget", help="spend, reservations and limits of your tenant and key, per window")
    _server_args(p)
    p.add_argument("--tenant", default="", help="another tenant's (admin scope); default: the key's own")
    p.set_defaults(fn=commands.budget)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("new", help="print a new API key and the config line holding its hash")
    p.add_argument("--tenant", required=True)
    p.add_argument("--scopes", default="route,report,read", help="comma-separated: route,report,read,admin")
    p.add_argument("--id", help="key id (default: <tenant>-<random>)")
    p.set_defaults(fn=commands.keys_new)

    simulate.add_parser(sub)
    bench.register(sub)
    leaderboard.register(sub, _server_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except commands.CliError as exc:
        print(f"modelyard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
