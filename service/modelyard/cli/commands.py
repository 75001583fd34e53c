"""One function per `modelyard` subcommand; output is for people (tables and sentences)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import uuid

from modelyard.auth import SCOPES, hash_key, new_key


class CliError(Exception):
    pass


def serve(args: argparse.Namespace) -> int:
    from modelyard.config import ConfigError
    from modelyard.server import serve as run

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every provider request at INFO: one line per Dispatch call would bury the service's own.
    # Its warnings and errors still show; `--log-level debug` shows the requests too.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(run(args.config, args.listen))
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    return 0


def check_config(args: argparse.Namespace) -> int:
    from modelyard.config import ConfigError, load_config

    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    keys = sum(len(t.keys) for t in cfg.tenants)
    print(f"{args.file}: OK (version {cfg.config_version}): {len(cfg.models)} models, "
          f"{len(cfg.tenants)} tenants, {keys} keys, store {cfg.store.kind}")
    return 0


def api_key(args: argparse.Namespace) -> str:
    """The API key from the environment variable named by --key-env."""
    key = os.environ.get(args.key_env)
    if not key:
        raise CliError(f"no API key: set {args.key_env} (the quickstart's development key is in README.md)")
    return key


def route(args: argparse.Namespace) -> int:
    from modelyard.cli.render import render_decision
    from modelyard.client import Client, ModelyardError

    constraints = {"required_provenance": args.provenance}
    if args.max_cost is not None:
        constraints["max_cost_usd"] = args.max_cost
    with Client(args.server, api_key(args)) as client:
        try:
            d = client.route(
                args.role, args.task_class, job_id=args.job_id or f"cli-{uuid.uuid4().hex[:12]}",
                est_input_tokens=args.input_tokens, est_output_tokens=args.output_tokens,
                capabilities=args.capability, constraints=constraints, explain=True,
                explore=False if args.greedy else None,
            )
        except ModelyardError as exc:
            raise CliError(str(exc)) from exc
    print(render_decision(d))
    return 0


def budget(args: argparse.Namespace) -> int:
    from modelyard.cli.render import render_budget
    from modelyard.client import Client, ModelyardError

    with Client(args.server, api_key(args)) as client:
        try:
            resp = client.get_budget(args.tenant)
        except ModelyardError as exc:
            raise CliError(str(exc)) from exc
    print(render_budget(resp))
    return 0


def prices(args: argparse.Namespace) -> int:
    from modelyard.cli.render import render_prices

    if args.from_server:
        from modelyard.client import Client
        with Client(args.server, api_key(args)) as client:
            models = client.list_models(include_estimates=True).models
            estimates = {
                role: {c.model_id: c for c in client.estimate(role, "default").candidates}
                for role in ("planner", "executor", "reviewer")
            }
        print(render_prices(models, estimates))
        return 0
    if not args.config:
        raise CliError("give --config FILE, or --from-server to ask a running server")
    from modelyard.cli.render import render_prices_offline
    from modelyard.config import ConfigError, load_config
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    print(render_prices_offline(cfg))
    return 0


def keys_new(args: argparse.Namespace) -> int:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise CliError(f"--scopes: unknown {bad}; choose from {', '.join(SCOPES)}")
    key = new_key()
    key_id = args.id or f"{args.tenant}-{secrets.token_hex(3)}"
    print(f"API key (shown once; give it to the harness, never to the config):\n  {key}\n")
    print(f"Add under tenants[id={args.tenant}].keys in the config:")
    print(f"  - {{id: {key_id}, sha256: {hash_key(key)}, scopes: [{', '.join(scopes)}]}}")
    return 0

