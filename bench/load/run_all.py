"""Runs the whole service-load suite: SQLite and Redis loads (with echo and LiteLLM references),
the memory bench and the target checks; prints Markdown for bench/README.md, or one JSON object.

Run from the repo root: python -m bench.load.run_all [--requests 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.load.service_load import table


def _run(module: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", module, *args, "--json"], capture_output=True, text=True,
                         timeout=3600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def checks(sqlite: dict[str, Any], redis: dict[str, Any]) -> list[str]:
    """The issue's targets, each as met/missed with the measured ratio."""
    lines = []
    for c in ("1", "16"):
        if "modelyard" not in sqlite or c not in sqlite["echo"]:
            continue
        r, e = sqlite["modelyard"][c]["route"], sqlite["echo"][c]["echo"]
        lines.append(f"c={c} SQLite Route p50 {r['p50_ms'] / e['p50_ms']:.2f}x echo (target <= 1.5x): "
                     f"{'met' if r['p50_ms'] <= 1.5 * e['p50_ms'] else 'MISSED'}")
        lines.append(f"c={c} SQLite Route req/s {r['rps'] / e['rps']:.2f}x echo (target >= 0.6x): "
                     f"{'met' if r['rps'] >= 0.6 * e['rps'] else 'MISSED'}")
        if "modelyard" in redis:
            rr, re_ = redis["modelyard"][c]["route"], redis["echo"][c]["echo"]
            lines.append(f"c={c} Redis Route req/s {rr['rps'] / re_['rps']:.2f}x echo (target >= 0.5x): "
                         f"{'met' if rr['rps'] >= 0.5 * re_['rps'] else 'MISSED'}")
        lite = sqlite.get("litellm", {}).get(c)
        if lite:
            met = r["rps"] >= 10 * lite["rps"] and r["p50_ms"] < 0.1 * lite["p50_ms"]
            lines.append(f"c={c} Route vs LiteLLM: req/s {r['rps'] / lite['rps']:.1f}x (target >= 10x), p50 "
                         f"{r['p50_ms'] / lite['p50_ms']:.2f}x (target < 0.1x): {'met' if met else 'MISSED'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", default="2000")
    ap.add_argument("--runs", default="3")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    common = ["--requests", args.requests, "--runs", args.runs]
    result = {"machine": machine(),
              "sqlite": _run("bench.load.service_load", *common),
              "redis": _run("bench.load.service_load", *common, "--store", "redis", "--no-litellm"),
              "memory": _run("bench.load.memory_bench")}
    result["checks"] = checks(result["sqlite"], result["redis"])
    if args.json:
        print(json.dumps(result))
        return
    print(f"Machine: {result['machine']}\n")
    for name in ("sqlite", "redis"):
        print("\n".join(f"> {n}" for n in result[name]["notes"]))
        print(table(result[name]), "\n")
    core, server = result["memory"]["core"], result["memory"].get("server", {})
    print(f"Memory: core {core['arms']} arms ({core['models']} models x {core['task_classes']} classes x "
          f"{core['models_per_class']}): {core['rss_after_mb']} MB; server after {server.get('task_classes_settled')} "
          f"task classes: {server.get('rss_after_mb')} MB\n")
    print("\n".join(f"- {line}" for line in result["checks"]))


if __name__ == "__main__":
    main()
