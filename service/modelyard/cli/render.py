"""Plain-text rendering of decisions and catalogs for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from modelyard.pricing import call_cost_usd


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _usd(x: float) -> str:
    return f"${x:.4f}" if x < 1 else f"${x:.2f}"


def _params(total: float | None, active: float | None, note: str = "") -> str:
    if total is None:
        return note or "n/p"
    if active is not None and active != total:
        return f"{total:g}B total / {active:g}B active"
    return f"{total:g}B"


def render_decision(d: Any) -> str:
    out = [
        f"decision {d.decision_id}",
        f"  model     {d.model.model_id}  ({d.model.provider}, endpoint {d.model.endpoint})",
        f"  expected  cost {_usd(d.expected.cost_usd)}, success {d.expected.success_probability:.0%}, "
        f"latency {d.expected.latency_ms / 1000:.1f} s, cost per success {_usd(d.expected.cost_per_success_usd)}",
        f"  reserved  {_usd(d.reserved_usd)}" + (
            f"; budget remaining {_usd(d.budget_remaining_usd)}" if d.budget_remaining_usd >= 0 else ""),
        f"  fallbacks {', '.join(f.model_id for f in d.fallbacks) or '(none)'}",
        f"  why       {d.reason}" + ("  [exploring]" if d.exploration else "") + ("  [sticky]" if d.sticky else ""),
    ]
    if d.candidates:
        rows = []
        for c in sorted(d.candidates, key=lambda c: (c.excluded, c.score)):
            e = c.expected
            rows.append([
                c.model_id, "excluded: " + c.constraint if c.excluded else "eligible",
                _usd(e.cost_usd), f"{e.success_probability:.2f}", f"{c.sampled_success_probability:.2f}",
                f"{e.latency_ms / 1000:.1f}s", "" if c.excluded else _usd(e.cost_per_success_usd),
                "" if c.excluded else _usd(c.score), f"{c.evidence:.1f}", c.detail if c.excluded else "",
            ])
        out += ["", _table(["model", "status", "cost/step", "p(success)", "sampled", "latency",
                            "cost/success", "score", "evidence", "detail"], rows),
                "score = (cost + the tenant's time value of the latency) / P(success), sampled P when exploring;"
                " lowest wins"]
    return "\n".join(out)


def render_prices_offline(cfg: Any) -> str:
    d = cfg.routing.default_tokens
    rows = []
    for m in sorted(cfg.models, key=lambda m: (m.tier, m.id)):
        p = m.price
        priced = p.input_per_mtok is not None and p.output_per_mtok is not None
        rows.append([
            m.id, str(m.tier),
            f"{p.input_per_mtok:g}" if priced else "n/p",
            f"{p.cached_input_per_mtok:g}" if p.cached_input_per_mtok is not None else "n/p",
            f"{p.output_per_mtok:g}" if priced else "n/p",
            _params(m.params.total_b, m.params.active_b, "n/p"),
            ",".join(m.provenance) or "-",
            _usd(call_cost_usd(p, d.input, d.cached_input, d.output)) if priced else "n/p",
            f"{p.source} ({p.as_of})" if p.source else (p.note or ""),
        ])
    head = (f"Prices in USD per million tokens; cost/step at the default step of {d.input:,} input "
            f"({d.cached_input:,} cached) and {d.output:,} output tokens. n/p = not published.\n")
    return head + _table(["model", "tier", "in", "cached in", "out", "parameters", "provenance",
                          "cost/step", "source"], rows)


def render_prices(models: Sequence[Any], estimates: Mapping[str, Mapping[str, Any]]) -> str:
    roles = list(estimates)
    rows = []
    for m in sorted(models, key=lambda m: (m.tier, m.model_id)):
        p = m.price
        total = m.parameters.total_b if m.parameters.HasField("total_b") else None
        active = m.parameters.active_b if m.parameters.HasField("active_b") else None
        row = [m.model_id, str(m.tier), f"{p.input_per_mtok:g}", f"{p.cached_input_per_mtok:g}",
               f"{p.output_per_mtok:g}", _params(total, active, m.parameters.note or "n/p"),
               ",".join(m.provenance) or "-"]
        for role in roles:
            c = estimates[role].get(m.model_id)
            row.append("-" if c is None or c.excluded else
                       f"{_usd(c.expected.cost_usd)} @ {c.expected.success_probability:.0%}")
        rows.append(row)
    return ("Prices in USD per million tokens; per role: expected cost per step @ success probability, "
            "from the server's current estimates.\n"
            + _table(["model", "tier", "in", "cached in", "out", "parameters", "provenance",
                      *[f"{r} step" for r in roles]], rows))


WINDOWS = {1: "hour", 2: "day", 3: "month"}


def render_budget(resp: Any) -> str:
    """One row per (scope, window): limits, spent, reserved (routed, not yet settled), what is left."""
    rows = []
    for w in resp.windows:
        limited = w.has_limit
        soft = _usd(w.soft_limit_usd) if limited and w.soft_limit_usd else "-"
        state = ""
        if limited:
            used = w.spent_usd + w.reserved_usd
            if used >= w.hard_limit_usd:
                state = "hard limit reached: Route refuses"
            elif w.soft_limit_usd and used >= w.soft_limit_usd:
                state = "past the soft limit: routing capped toward cheaper models"
        rows.append([f"{w.scope} {w.subject}", WINDOWS.get(w.window, str(w.window)),
                     _usd(w.hard_limit_usd) if limited else "none", soft, _usd(w.spent_usd), _usd(w.reserved_usd),
                     _usd(w.remaining_usd) if limited else "-", w.resets_at, state])
    if not rows:
        return "no budget windows"
    return _table(["budget", "window", "hard", "soft", "spent", "reserved", "remaining", "resets", ""], rows)
