"""Parser for `models:`: prices with their source and date, parameters, priors, capabilities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard.config._reader import REQUIRED, SLUG, Reader, join
from modelyard.config.schema import (
    CAPABILITIES,
    DEFAULT_PRIOR_STRENGTH,
    TIER_PRIORS,
    LatencyConfig,
    ModelConfig,
    ParamsConfig,
    PriceConfig,
    PriorConfig,
)

MODEL_KEYS = ("id", "display_name", "provider", "endpoint", "upstream_model", "tier", "price",
              "context_window", "params", "provenance", "capabilities", "prior", "latency", "note")
PRICE_KEYS = ("input_per_mtok", "cached_input_per_mtok", "output_per_mtok", "source", "as_of",
              "published", "note")
NUMBERS = {
    "input_per_mtok": "write the provider's list price in USD per million input tokens",
    "cached_input_per_mtok": "write the price per million cached (cache-read) input tokens; "
                             "omit it when there is no cache discount",
    "output_per_mtok": "write the provider's list price in USD per million output tokens",
}


def _price(r: Reader, raw: Any, p: str) -> PriceConfig:
    if raw is None:
        r.error(p, "is required", "write the list price per million tokens with its source and as_of "
                "date, or published: false with a note when the maker publishes none")
        return PriceConfig(None, None, None, None, None, published=False)
    d = r.mapping(raw, p, PRICE_KEYS, "write { input_per_mtok, cached_input_per_mtok, output_per_mtok, "
                  "source, as_of }")
    published = r.boolean(d, "published", p, "write false when the maker publishes no price", True)
    note = r.text(d, "note", p, "write a short note", default=None)
    nums = {k: r.number(d, k, p, fix, default=None, lo=0) for k, fix in NUMBERS.items()}
    given = [k for k in ("input_per_mtok", "output_per_mtok") if nums[k] is not None]
    if published and len(given) < 2:
        for k in ("input_per_mtok", "output_per_mtok"):
            if k not in given and d.get(k) is None:
                r.error(join(p, k), "is required", NUMBERS[k]
                        + " (or write published: false and a note if the maker publishes none)")
    elif len(given) == 1:
        missing = "output_per_mtok" if given == ["input_per_mtok"] else "input_per_mtok"
        r.error(join(p, missing), "is required when the other price is given",
                "give both input and output prices, or neither (the model is then left out of routing)")
    if not published and not note:
        r.error(join(p, "note"), "is required when published is false",
                'say why there is no price, e.g. note: "open weights; the maker sells no API"')
    if nums["cached_input_per_mtok"] is not None and len(given) < 2:
        r.error(join(p, "cached_input_per_mtok"), "is given without input and output prices",
                "give all three prices, or none")
    priced = len(given) == 2
    cached = nums["cached_input_per_mtok"]
    if priced and cached is None:
        cached = nums["input_per_mtok"]  # no cache discount: cached input bills at the input price
    need_source = published or priced
    src_fix = "write the URL of the pricing page the numbers come from"
    date_fix = "write the date of that page or announcement as YYYY-MM-DD"
    return PriceConfig(
        input_per_mtok=nums["input_per_mtok"] if priced else None,
        cached_input_per_mtok=cached if priced else None,
        output_per_mtok=nums["output_per_mtok"] if priced else None,
        source=r.url(d, "source", p, src_fix, default=REQUIRED if need_source else None),
        as_of=r.day(d, "as_of", p, date_fix, default=REQUIRED if need_source else None),
        published=published,
        note=note,
    )


def _params(r: Reader, raw: Any, p: str) -> ParamsConfig:
    d = r.mapping(raw, p, ("total_b", "active_b", "note"), "write { total_b: 137, active_b: 5 }")
    fix = "write billions of parameters, e.g. 137 for 137B; dense models give total_b = active_b"
    total = r.number(d, "total_b", p, fix, default=None, lo=0, lo_open=True)
    active = r.number(d, "active_b", p, fix, default=None, lo=0, lo_open=True)
    note = r.text(d, "note", p, "write a short note", default=None)
    moe = "a mixture-of-experts model always shows both counts (e.g. total_b: 137, active_b: 5)"
    if active is not None and total is None and d.get("total_b") is None:
        r.error(join(p, "total_b"), "is required when active_b is set", moe)
    elif total is not None and active is None and d.get("active_b") is None:
        r.error(join(p, "active_b"), "is required when total_b is set",
                moe + "; for a dense model write active_b equal to total_b")
    elif total is not None and active is not None and active > total:
        r.error(join(p, "active_b"), f"({active:g}) exceeds total_b ({total:g})",
                "active parameters are a subset of the total: check which number is which")
    if total is None and active is None and not note:
        r.error(join(p, "note"), "is required when the parameter counts are unknown",
                'write note: "not published"')
    return ParamsConfig(total_b=total, active_b=active, note=note)


def _model(r: Reader, raw: Any, p: str, endpoints: Mapping[str, object]) -> ModelConfig | None:
    d = r.mapping(raw, p, MODEL_KEYS, "write each model as a mapping with id, provider, endpoint, …")
    if not d:
        return None
    mid = r.text(d, "id", p, "write a lowercase id such as claude-sonnet-4.5", pattern=SLUG,
                 what="a lowercase id (a-z, 0-9, . _ -)")
    endpoint = r.text(d, "endpoint", p, "write the name of an entry under endpoints:")
    if endpoint and endpoints and endpoint not in endpoints:
        r.error(join(p, "endpoint"), f"no endpoint named '{endpoint}'",
                f"use one of: {', '.join(endpoints)}, or add it under endpoints:")
    tier = r.number(d, "tier", p, "write 1 (cheap worker) … 4 (frontier)", lo=1, hi=4, integer=True)
    pp, lp = join(p, "prior"), join(p, "latency")
    pr = r.mapping(d.get("prior"), pp, ("success", "strength"), "write { success: 0.5, strength: 2 }")
    la = r.mapping(d.get("latency"), lp, LatencyConfig.__slots__,
                   "write { first_token_ms: 1000, output_tokens_per_s: 50 }")
    return ModelConfig(
        id=mid,
        display_name=r.text(d, "display_name", p, "write a human name", default=mid),
        provider=r.text(d, "provider", p, "write who sells the model, e.g. anthropic", pattern=SLUG,
                        what="a lowercase name"),
        endpoint=endpoint,
        upstream_model=r.text(d, "upstream_model", p, "write the provider's model name", default=mid),
        tier=tier,
        price=_price(r, d.get("price"), join(p, "price")),
        context_window=r.number(d, "context_window", p, "write the context window in tokens, "
                                "e.g. 200000", lo=1024, integer=True),
        params=_params(r, d.get("params"), join(p, "params")),
        provenance=r.names(d, "provenance", p, "write lowercase tags such as licensed-data, open-weights"),
        capabilities=r.names(d, "capabilities", p, "", vocabulary=CAPABILITIES),
        prior=PriorConfig(
            success=r.number(pr, "success", pp, "write a prior success probability strictly between "
                             "0 and 1 (the default comes from the tier)",
                             default=TIER_PRIORS.get(tier, 0.5), lo=0, hi=1, lo_open=True, hi_open=True),
            strength=r.number(pr, "strength", pp, "write how many observations the prior is worth, > 0",
                              default=DEFAULT_PRIOR_STRENGTH, lo=0, lo_open=True),
        ),
        latency=LatencyConfig(
            first_token_ms=r.number(la, "first_token_ms", lp, "write milliseconds to first token, > 0",
                                    default=1000.0, lo=0, lo_open=True),
            output_tokens_per_s=r.number(la, "output_tokens_per_s", lp, "write output tokens per "
                                         "second, > 0", default=50.0, lo=0, lo_open=True),
        ),
        note=r.text(d, "note", p, "write a short note", default=None),
    )


def models(r: Reader, raw: Any, endpoints: Mapping[str, object]) -> tuple[ModelConfig, ...]:
    items = r.seq(raw, "models", "write models: as a list of mappings, one per model")
    if not items:
        r.error("models", "must list at least one model", "add a model with its price and endpoint")
    out: list[ModelConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        m = _model(r, item, join("models", i), endpoints)
        if m is None:
            continue
        if m.id in seen:
            r.error(join(join("models", i), "id"), f"'{m.id}' is already models[{seen[m.id]}].id",
                    "give every model a distinct id")
            continue
        seen[m.id] = i
        out.append(m)
    return tuple(out)
