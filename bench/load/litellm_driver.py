"""LiteLLM's Router picking among the bench deployments with mock responses, driven in-process.

Runs inside bench/load/.venv-bench (LiteLLM is never a dependency of modelyard) from the repo root:
  .venv-bench/bin/python -m bench.load.litellm_driver --models JSON --concurrency 1,4 ...
Prints one JSON object: per concurrency, completions/s and p50/p99 in ms (medians of the runs).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of the price map

import litellm
from litellm import Router

from bench.load.loadgen import median_runs, run_load

MESSAGES = [{"role": "user", "content": "Fix the failing test in tests/test_parser.py"}]


def build_router(models: list[dict], strategy: str, priced: bool = True) -> Router:
    """One model group, one deployment per bench model, priced like the modelyard config (unless
    `priced` is off: LiteLLM then registers no custom prices on each call, see bench/README)."""
    def params(m: dict) -> dict:
        p = {"model": f"openai/{m['id']}", "api_key": "sk-bench", "api_base": "http://127.0.0.1:9/v1"}
        if priced:
            p["input_cost_per_token"] = m["price"]["input_per_mtok"] / 1e6
            p["output_cost_per_token"] = m["price"]["output_per_mtok"] / 1e6
        return p

    deployments = [{"model_name": "coder", "litellm_params": params(m), "model_info": {"id": m["id"]}}
                   for m in models]
    return Router(model_list=deployments, routing_strategy=strategy, num_retries=0)


async def measure(models: list[dict], concs: list[int], requests: int, runs: int, strategy: str,
                  priced: bool = True) -> dict:
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    router = build_router(models, strategy, priced)

    async def call(i: int) -> None:
        await router.acompletion(model="coder", messages=MESSAGES, mock_response="ok")

    out = {}
    for c in concs:
        await run_load(call, concurrency=c, requests=min(100, requests), time_limit_s=60)  # warm-up
        runs_ = [await run_load(call, concurrency=c, requests=requests, time_limit_s=60) for _ in range(runs)]
        out[str(c)] = median_runs(runs_).as_dict()
    return {"version": importlib.metadata.version("litellm"), "strategy": strategy, "priced": priced,
            "results": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", required=True, help="JSON list of model dicts (id, price)")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--strategy", default="simple-shuffle")
    ap.add_argument("--unpriced", action="store_true",
                    help="deployments without per-token prices (not the reference: modelyard routes by price)")
    args = ap.parse_args()
    concs = [int(c) for c in args.concurrency.split(",")]
    print(json.dumps(asyncio.run(measure(json.loads(args.models), concs, args.requests, args.runs, args.strategy,
                                         priced=not args.unpriced))))


if __name__ == "__main__":
    main()
