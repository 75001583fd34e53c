"""Metrics (medians over orders), the results table, the learning-curve table and the PNG plot.

cost per solved task = everything paid (all attempts, failed ones too) / tasks solved. The learning
curve is the same ratio over the first N tasks of the arrival order (N = 50, 100, …).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from modelyard.replay.baselines import Run


@dataclass
class Summary:
    solved_share: float
    cost_per_solved: float
    mean_attempts: float
    curve: list[tuple[int, float]]
    label: str = ""


def _cps(cost: float, solved: int) -> float:
    return cost / solved if solved else float("inf")


def curve(run: Run, order: list[int], step: int = 50) -> list[tuple[int, float]]:
    out, cost, solved = [], 0.0, 0
    for i, t in enumerate(order, 1):
        cost += run.cost[t]
        solved += run.solved[t]
        if i % step == 0 or i == len(order):
            out.append((i, _cps(cost, solved)))
    return out


def summarise(runs: list[tuple[Run, list[int]]], step: int = 50) -> Summary:
    """Medians over (run, arrival order) pairs."""
    shares, cps, att, curves = [], [], [], []
    for run, order in runs:
        n = len(order)
        solved = sum(run.solved[t] for t in order)
        shares.append(solved / n)
        cps.append(_cps(sum(run.cost[t] for t in order), solved))
        att.append(sum(run.attempts[t] for t in order) / n)
        curves.append(curve(run, order, step))
    points = [(curves[0][i][0], statistics.median(c[i][1] for c in curves)) for i in range(len(curves[0]))]
    return Summary(statistics.median(shares), statistics.median(cps), statistics.median(att), points,
                   runs[0][0].label)


def as_json(summaries: dict[str, Summary]) -> dict[str, Any]:
    return {"policies": {name: {"solved_share": round(s.solved_share, 4),
                                "cost_per_solved": round(s.cost_per_solved, 5),
                                "mean_attempts": round(s.mean_attempts, 3)}
                         for name, s in summaries.items()}}


def table_text(summaries: dict[str, Summary], title: str) -> str:
    lines = [f"### {title}", "", "| policy | solved | $ per solved | mean attempts | models |",
             "|---|---:|---:|---:|---|"]
    for name, s in summaries.items():
        lines.append(f"| {name} | {s.solved_share:.1%} | ${s.cost_per_solved:.4f} | {s.mean_attempts:.2f} "
                     f"| {s.label} |")
    return "\n".join(lines)


def curve_text(summaries: dict[str, Summary], title: str) -> str:
    ns = [n for n, _ in next(iter(summaries.values())).curve]
    lines = [f"### {title}: $ per solved over the first N tasks (median over orders)", "",
             "| policy | " + " | ".join(str(n) for n in ns) + " |", "|---|" + "---:|" * len(ns)]
    for name, s in summaries.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for _, v in s.curve) + " |")
    return "\n".join(lines)


def plot(panels: dict[str, dict[str, Summary]], path: str) -> None:
    """One panel per K: cost per solved task over the first N tasks, log scale; small PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # optional dependency
        raise RuntimeError("--plot needs matplotlib: pip install 'modelyard[bench]'") from exc
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, summaries) in zip(axes[0], panels.items(), strict=True):
        for name, s in summaries.items():
            xs = [n for n, _ in s.curve]
            ys = [v for _, v in s.curve]
            ax.plot(xs, ys, label=name, lw=2.2 if name == "modelyard" else 1.1,
                    ls="-" if name in ("modelyard", "oracle", "cascade") else "--")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("first N tasks", fontsize=8)
        ax.set_ylabel("$ per solved task", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
