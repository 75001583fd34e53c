"""What a simulated model answers: from a per-model profile, or by replaying an outcome table.

Profiles (YAML or JSON: `{default: {...}, models: {name: {...}}}`) set latency, tokens, error and
success rates. An outcome table (../shared/data/routing format: task_id, model, success, cost_usd,
optional input_tokens / output_tokens) answers PASS or FAIL for the named task; when the table has
no token counts, usage is derived from cost_usd at the profile's prices (80% of the cost on input,
20% on output), so that a catalog with the same prices records the table's cost.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import math
import random
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

INPUT_COST_SHARE = 0.8
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Profile:
    first_token_ms: float = 50.0
    tokens_per_s: float = 2000.0
    output_tokens: int = 120
    error_rate: float = 0.0
    error_status: int = 0  # 0: alternate 500 and 429; else always this status
    success_rate: float = 0.7
    cached_fraction: float = 0.0
    price_in_per_mtok: float = 1.0
    price_out_per_mtok: float = 5.0


@dataclass(frozen=True, slots=True)
class TableRow:
    success: bool
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    """One simulated response: an HTTP error (status > 0) or text with usage and pacing."""

    status: int
    text: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    first_token_s: float
    total_s: float
    source: str  # "profile", "table" or "error"


def _profile(raw: dict[str, Any], base: Profile, where: str) -> Profile:
    known = {f.name for f in fields(Profile)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{where}: unknown profile fields {sorted(unknown)}; known: {sorted(known)}")
    return replace(base, **raw)


def load_profiles(path: str | Path | None) -> tuple[Profile, dict[str, Profile]]:
    if path is None:
        return Profile(), {}
    doc = yaml.safe_load(Path(path).read_text()) or {}
    default = _profile(doc.get("default") or {}, Profile(), f"{path}: default")
    raw = doc.get("models") or {}
    models = {name: _profile(p or {}, default, f"{path}: models.{name}") for name, p in raw.items()}
    return default, models


def _opt_float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def load_table(path: str | Path) -> dict[tuple[str, str], TableRow]:
    rows: dict[tuple[str, str], TableRow] = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            tin, tout = _opt_float(r.get("input_tokens")), _opt_float(r.get("output_tokens"))
            rows[(r["task_id"], r["model"])] = TableRow(
                success=r.get("success", "0") in ("1", "1.0", "true", "True"),
                cost_usd=_opt_float(r.get("cost_usd")),
                input_tokens=int(tin) if tin is not None else None,
                output_tokens=int(tout) if tout is not None else None,
            )
    return rows


class Simulator:
    def __init__(self, *, seed: int = 0, default: Profile | None = None, profiles: dict[str, Profile] | None = None,
                 table: dict[tuple[str, str], TableRow] | None = None, time_scale: float = 1.0) -> None:
        self.seed = seed
        self.default = default or Profile()
        self.profiles = profiles or {}
        self.table = table or {}
        self.time_scale = time_scale
        self._counter = itertools.count()

    def profile(self, model: str) -> Profile:
        return self.profiles.get(model, self.default)

    def _rng(self, *parts: object) -> random.Random:
        digest = hashlib.sha256(":".join(map(str, (self.seed, *parts))).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def answer(self, model: str, prompt: str, task: str = "") -> Answer:
        p = self.profile(model)
        n = next(self._counter)
        draw = self._rng("error", model, n)
        if draw.random() < p.error_rate:
            status = p.error_status or (500 if draw.random() < 0.5 else 429)
            return Answer(status, f"simulated error {status}", 0, 0, 0, 0.0, 0.0, "error")
        row = self.table.get((task, model)) if task else None
        input_tokens = max(1, math.ceil(len(prompt) / CHARS_PER_TOKEN))
        output_tokens = p.output_tokens
        if row is not None:
            success, source = row.success, "table"
            if row.input_tokens is not None and row.output_tokens is not None:
                input_tokens, output_tokens = row.input_tokens, row.output_tokens
            elif row.cost_usd is not None:
                input_tokens = round(row.cost_usd * INPUT_COST_SHARE / p.price_in_per_mtok * 1e6)
                output_tokens = round(row.cost_usd * (1 - INPUT_COST_SHARE) / p.price_out_per_mtok * 1e6)
        else:
            success, source = self._rng("success", model, task or prompt).random() < p.success_rate, "profile"
        verdict = "PASS" if success else "FAIL"
        first = p.first_token_ms / 1000 * self.time_scale
        total = first + output_tokens / max(p.tokens_per_s, 1e-9) * self.time_scale
        return Answer(
            status=0, text=f"{verdict}: simulated answer of {model}" + (f" for {task}" if task else ""),
            input_tokens=input_tokens, cached_input_tokens=math.floor(input_tokens * p.cached_fraction),
            output_tokens=output_tokens, first_token_s=first, total_s=total, source=source,
        )
