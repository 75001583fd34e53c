"""Read one YAML file, validate all of it, and return a frozen `Config` (or raise `ConfigError`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from modelyard.config import _models, _sections, _tenants
from modelyard.config._reader import SECRET, Reader, join, redact
from modelyard.config.errors import ConfigError, Problem
from modelyard.config.schema import Config, KeyConfig, TenantConfig

TOP_KEYS = ("version", "server", "store", "routing", "telemetry", "endpoints", "models", "tenants")
SUPPORTED_VERSIONS = (1,)
LEAK_FIX = ("secrets never go in the file: put the key in an environment variable and name that "
              "variable in a *_env field (e.g. api_key_env: OPENAI_API_KEY); rotate the exposed key")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)  # type: ignore[no-untyped-call]
    return dict(loader.construct_pairs(node))  # type: ignore[no-untyped-call]


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    # Dates stay text so that an impossible date (2025-02-30) is reported by the field reader.
    return str(loader.construct_scalar(node))  # type: ignore[no-untyped-call]


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _scan_secrets(r: Reader, node: Any, path: str, found: set[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _scan_secrets(r, v, join(path, str(k)), found)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _scan_secrets(r, v, join(path, i), found)
    elif isinstance(node, str) and (m := SECRET.search(node)):
        found.add(m.group(0))
        r.error(path, f"looks like a secret ({redact(m.group(0))})", LEAK_FIX)


def _scan_comments(r: Reader, text: str, found: set[str]) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        for m in SECRET.finditer(line):
            if m.group(0) not in found:
                found.add(m.group(0))
                r.error(f"line {n}", f"looks like a secret ({redact(m.group(0))}), e.g. in a comment",
                        LEAK_FIX)


def _key_index(tenants: tuple[TenantConfig, ...]) -> dict[str, tuple[TenantConfig, KeyConfig]]:
    return {k.sha256: (t, k) for t in tenants for k in t.keys}


def parse_config(text: str, source: str = "<config>", base_dir: str | Path | None = None) -> Config:
    """Validate YAML `text`; `source` names it in errors; relative paths resolve against `base_dir`
    (default: the directory of `source`)."""
    base = Path(base_dir) if base_dir is not None else Path(source).parent
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [Problem(where, f"is not valid YAML: {what}",
                                           "fix the YAML syntax (indentation, quoting, colons)")]) from None
    r = Reader(source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("", "must be a YAML mapping at the top level",
                                           "start from deploy/config.example.yaml")])
    found: set[str] = set()
    _scan_secrets(r, raw, "", found)
    _scan_comments(r, text, found)
    d = r.mapping(raw, "", TOP_KEYS, "")
    version = r.number(d, "version", "", "write version: 1 at the top of the file", lo=1, integer=True)
    if "version" in d and isinstance(d["version"], int) and d["version"] not in SUPPORTED_VERSIONS:
        r.error("version", f"{d['version']} is not supported",
                f"this modelyard reads version {', '.join(map(str, SUPPORTED_VERSIONS))}")
    endpoints = _sections.endpoints(r, d.get("endpoints"))
    models = _models.models(r, d.get("models"), endpoints)
    models_ok = not any(p.path.startswith("models") for p in r.problems)
    if models and models_ok and not any(m.routable for m in models):
        r.error("models", "no model has a price, so nothing can be routed",
                "give at least one model input_per_mtok and output_per_mtok")
    provenance = {tag for m in models for tag in m.provenance}
    tenants = _tenants.tenants(r, d.get("tenants"), {m.id for m in models}, provenance)
    cfg = Config(
        version=version,
        source=source,
        config_version=hashlib.sha256(text.encode()).hexdigest()[:12],
        server=_sections.server(r, d.get("server")),
        store=_sections.store(r, d.get("store"), base),
        routing=_sections.routing(r, d.get("routing")),
        telemetry=_sections.telemetry(r, d.get("telemetry")),
        endpoints=endpoints,
        models=models,
        tenants=tenants,
        _models=MappingProxyType({m.id: m for m in models}),
        _tenants=MappingProxyType({t.id: t for t in tenants}),
        _keys=MappingProxyType(_key_index(tenants)),
    )
    if cfg.server.front == "rust" and cfg.store.kind == "sqlite" and str(cfg.store.sqlite.path) == ":memory:":
        r.error("server.front", "rust reserves in the SQLite store file, and :memory: is not one it can open",
                "give store.sqlite.path a file path, or set server.front: python")
    if r.problems:
        raise ConfigError(source, r.problems)
    return cfg


def load_config(path: str | Path) -> Config:
    """Read and validate one YAML config file. Raises `ConfigError` listing every problem."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [Problem("", f"cannot be read ({exc.strerror or exc})",
                                              "check the path given to --config")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), [Problem("", "is not UTF-8 text", "save the file as UTF-8")]) from None
    cfg = parse_config(text, str(path), base_dir=p.resolve().parent)
    return cfg
