"""The LiteLLM reference: creates bench/load/.venv-bench (pinned LiteLLM + py-spy) and runs the driver.

The environment is separate so LiteLLM never becomes a dependency of modelyard. Every package in it is
pinned (litellm-requirements.txt, LiteLLM's dependencies included: resolved afresh, they moved the
reference between machines). The LiteLLM pin predates the releases reported as compromised on PyPI;
bump it only to a version checked to be clean.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.load import targets

VENV = Path(__file__).resolve().parent / ".venv-bench"
REQUIREMENTS = Path(__file__).resolve().parent / "litellm-requirements.txt"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_env() -> Path:
    """Create the bench venv and install the pins once; later runs reuse it."""
    py = venv_python()
    marker = VENV / ".installed"
    pins = REQUIREMENTS.read_text()
    if marker.exists() and marker.read_text() == pins:
        return py
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)],
                   check=True, timeout=900)
    marker.write_text(pins)
    return py


def measure(concs: list[int], requests: int, runs: int, notes: list[str], strategy: str = "simple-shuffle",
            ) -> dict[str, Any]:
    """Per concurrency {rps, p50_ms, p99_ms, ...}; {} with a note when the env cannot be built."""
    try:
        py = ensure_env()
    except (subprocess.SubprocessError, OSError) as exc:
        notes.append(f"SKIPPED LiteLLM reference: cannot build {VENV}: {exc}")
        return {}
    models = json.dumps(targets.models(4))
    proc = subprocess.run(
        [str(py), "-m", "bench.load.litellm_driver", "--models", models, "--concurrency", ",".join(map(str, concs)),
         "--requests", str(requests), "--runs", str(runs), "--strategy", strategy],
        cwd=targets.REPO, capture_output=True, text=True, timeout=1800, check=False,
    )
    if proc.returncode != 0:
        notes.append(f"SKIPPED LiteLLM reference: driver failed: {proc.stderr[-1500:]}")
        return {}
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    notes.append(f"LiteLLM {data['version']} Router, routing_strategy={data['strategy']}, mock_response, in-process")
    return data["results"]
