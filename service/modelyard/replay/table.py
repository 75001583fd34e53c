"""Loads an outcome table (task_id, task_group, model, success, cost…) and its list prices.

Cost of a (task, model) cell: `cost_usd`, else `cost_est_usd`, else (no cost in the source, e.g.
LiveCodeBench) list price x `GENERIC_CALL_TOKENS`. List prices come from the companion
`<table>_models.csv` or from the table's own `price_in_per_mtok` / `price_out_per_mtok` columns.
Models without a list price are dropped (the router cannot cost them; the service drops them too).
A missing (task, model) row (no trajectory in the source) counts as a failure that cost nothing.
Model ids are lower-cased with "/" → "-" so they are valid config ids.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

#: Tokens of one call used to price a source without cost data (input, output).
GENERIC_CALL_TOKENS = (1_000, 4_000)


def model_id(name: str) -> str:
    return name.strip().lower().replace("/", "-").replace(" ", "-")


@dataclass
class Table:
    """Outcomes as columns per model; `models` is ordered by list price (cheapest first)."""

    name: str
    tasks: list[str]
    groups: list[str]
    models: list[str]
    prices: dict[str, tuple[float, float]]
    ok: dict[str, list[bool]]
    cost: dict[str, list[float]]
    providers: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.tasks)

    def share(self, m: str) -> float:
        return sum(self.ok[m]) / self.n

    def cost_per_solved(self, m: str) -> float:
        s = sum(self.ok[m])
        return sum(self.cost[m]) / s if s else float("inf")

    def list_cost(self, m: str, tokens: tuple[int, int]) -> float:
        pin, pout = self.prices[m]
        return (pin * tokens[0] + pout * tokens[1]) / 1e6


def _num(s: str | None) -> float | None:
    s = (s or "").strip()
    return float(s) if s else None


def _companion_prices(path: Path) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    comp = path.with_name(path.stem + "_models.csv")
    prices: dict[str, tuple[float, float]] = {}
    vendors: dict[str, str] = {}
    if not comp.exists():
        return prices, vendors
    with comp.open(newline="") as f:
        for r in csv.DictReader(f):
            m = model_id(r["model"])
            pin, pout = _num(r.get("price_in_per_mtok")), _num(r.get("price_out_per_mtok"))
            if pin is not None and pout is not None:
                prices[m] = (pin, pout)
            vendors[m] = (r.get("vendor") or "").strip()
    return prices, vendors


def _columns(order: list[str], kept: list[str], cells: dict[tuple[str, str], tuple[bool, float | None]],
             prices: dict[str, tuple[float, float]]) -> tuple[dict[str, list[bool]], dict[str, list[float]], int]:
    ok: dict[str, list[bool]] = {m: [] for m in kept}
    cost: dict[str, list[float]] = {m: [] for m in kept}
    missing = 0
    for t in order:
        for m in kept:
            cell = cells.get((t, m))
            if cell is None:
                missing += 1
                ok[m].append(False)
                cost[m].append(0.0)
                continue
            c = cell[1]
            if c is None:
                pin, pout = prices[m]
                c = (pin * GENERIC_CALL_TOKENS[0] + pout * GENERIC_CALL_TOKENS[1]) / 1e6
            ok[m].append(cell[0])
            cost[m].append(c)
    return ok, cost, missing


def load_table(path: str | Path, *, priced_tokens: tuple[int, int] = (100_000, 50_000)) -> Table:
    """`priced_tokens` orders the models by list price (the router's cold-start cost estimate)."""
    path = Path(path)
    prices, vendors = _companion_prices(path)
    row_prices: dict[str, tuple[float, float]] = {}
    cells: dict[tuple[str, str], tuple[bool, float | None]] = {}
    group_of: dict[str, str] = {}
    order: list[str] = []
    models: set[str] = set()
    kinds: set[str] = set()
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            t, m = r["task_id"], model_id(r["model"])
            if t not in group_of:
                group_of[t] = (r.get("task_group") or "").strip() or "default"
                order.append(t)
            models.add(m)
            pin, pout = _num(r.get("price_in_per_mtok")), _num(r.get("price_out_per_mtok"))
            if pin is not None and pout is not None:
                row_prices.setdefault(m, (pin, pout))
            c = _num(r.get("cost_usd"))
            kinds.add("cost_usd" if c is not None else "")
            if c is None:
                c = _num(r.get("cost_est_usd"))
                kinds.add("cost_est_usd" if c is not None else "list price")
            cells[(t, m)] = (str(r["success"]).strip() in ("1", "1.0", "True", "true"), c)
    for m, p in row_prices.items():
        prices.setdefault(m, p)
    notes = []
    dropped = sorted(m for m in models if m not in prices)
    if dropped:
        notes.append(f"dropped (no list price): {', '.join(dropped)}")
    kept = sorted((m for m in models if m in prices),
                  key=lambda m: (prices[m][0] * priced_tokens[0] + prices[m][1] * priced_tokens[1], m))
    ok, cost, missing = _columns(order, kept, cells, prices)
    if missing:
        notes.append(f"{missing} missing (task, model) rows count as failures at $0")
    if "list price" in kinds:
        notes.append(f"no cost in the source: cost = list price x {GENERIC_CALL_TOKENS[0]:,} input + "
                     f"{GENERIC_CALL_TOKENS[1]:,} output tokens per task")
    elif "cost_est_usd" in kinds:
        notes.append("cost = cost_usd where given, else cost_est_usd (the source's per-call estimate)")
    return Table(name=path.stem, tasks=order, groups=[group_of[t] for t in order], models=kept,
                 prices={m: prices[m] for m in kept}, ok=ok, cost=cost,
                 providers={m: vendors.get(m, "") for m in kept}, notes=notes)
