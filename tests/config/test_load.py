"""Loading: the minimal and example configs, all-errors-at-once, secrets, MoE params, key lookup."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import yaml

from modelyard.config import ConfigError, load_config, parse_config
from tests.config.cfg_helpers import KEY_HASH, dump, minimal, mutate, parse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [ROOT / "deploy" / "config.example.yaml", ROOT / "deploy" / "config.production.example.yaml"]
DEV_KEY = "my_dev_DO_NOT_USE_IN_PRODUCTION_quickstart"


def test_minimal_config_loads_with_defaults() -> None:
    cfg = parse(minimal())
    assert [m.id for m in cfg.models] == ["small", "big"]
    assert cfg.server.listen == "127.0.0.1:50051" and cfg.server.reflection is False
    assert cfg.store.kind == "sqlite" and cfg.store.on_unavailable == "fail_closed"
    assert cfg.routing.default_tokens.input == 20_000
    small = cfg.model("small")
    assert small is not None and small.prior.success == 0.35 and small.prior.strength == 2.0
    assert cfg.model("nope") is None
    assert isinstance(cfg.models, tuple) and isinstance(small.capabilities, tuple)


def test_config_is_frozen() -> None:
    cfg = parse(minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.models[0].tier = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.endpoints["x"] = cfg.endpoints["openai"]  # type: ignore[index]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_load(path: Path) -> None:
    cfg = load_config(path)
    assert len(cfg.models) >= 12
    assert cfg.config_version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    mai = cfg.model("mai-code-1-flash")
    assert mai is not None and (mai.params.total_b, mai.params.active_b) == (137, 5)
    assert "licensed-data" in mai.provenance
    for m in cfg.models:
        assert m.routable or (not m.price.published and m.price.note), m.id
        assert (m.params.total_b is None) == (m.params.active_b is None), m.id
    lawfirm = cfg.tenant("lawfirm")
    assert lawfirm is not None and lawfirm.policy.required_provenance == ("licensed-data",)


def test_dev_and_production_examples_differ_where_they_should() -> None:
    dev, prod = (load_config(p) for p in EXAMPLES)
    assert dev.models == prod.models, "keep the model catalogs identical"
    assert dev.server.reflection and not prod.server.reflection
    assert (dev.store.kind, prod.store.kind) == ("sqlite", "redis")
    assert not dev.telemetry.enabled and prod.telemetry.enabled
    found = dev.key_by_hash(hashlib.sha256(DEV_KEY.encode()).hexdigest())
    assert found is not None and found[0].id == "acme" and set(found[1].scopes) == {
        "route", "report", "read", "admin"}
    assert sum(len(t.keys) for t in prod.tenants) == 0


def test_key_by_hash() -> None:
    cfg = parse(minimal())
    tenant, key = cfg.key_by_hash(KEY_HASH)  # type: ignore[misc]
    assert (tenant.id, key.id, key.scopes) == ("acme", "acme-dev", ("route", "report"))
    assert cfg.key_by_hash(KEY_HASH.upper()) is not None
    assert cfg.key_by_hash("0" * 64) is None


def test_unknown_key_suggests_the_right_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse(mutate(minimal(), "servr", {"listen": "127.0.0.1:1"}))
    assert "deploy/config.yaml: servr: unknown key — did you mean 'server'?" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse(mutate(minimal(), "models.0.context_windw", 1))
    assert "models[0].context_windw: unknown key — did you mean 'context_window'?" in str(info.value)


def test_all_errors_are_reported_together() -> None:
    cfg = mutate(minimal(), "models.0.tier", 9)
    cfg = mutate(cfg, "store.kind", "mongo")
    cfg = mutate(cfg, "tenants.0.keys.0.sha256", "xyz")
    with pytest.raises(ConfigError) as info:
        parse(cfg, "c.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and len(info.value.problems) == 3
    assert {ln.split(": ")[1] for ln in lines} == {"models[0].tier", "store.kind", "tenants[0].keys[0].sha256"}
    assert all(ln.startswith("c.yaml: ") for ln in lines)


@pytest.mark.parametrize(("params", "ok"), [
    ({"total_b": 137, "active_b": 5}, True),
    ({"total_b": 123, "active_b": 123, "note": "dense"}, True),
    ({"note": "not published"}, True),
    ({"active_b": 5}, False),
    ({"total_b": 137}, False),
    ({"total_b": 5, "active_b": 137}, False),
    ({"total_b": 0, "active_b": 0}, False),
])
def test_moe_params(params: dict[str, object], ok: bool) -> None:
    cfg = mutate(minimal(), "models.0.params", params)
    if ok:
        assert parse(cfg).models[0].params.total_b == params.get("total_b")
    else:
        with pytest.raises(ConfigError, match=r"models\[0\]\.params\."):
            parse(cfg)


@pytest.mark.parametrize("secret", [
    "sk-proj-abcdefghijklmnop", "sk-ant-api03-abcdefghijkl", "AKIAABCDEFGHIJKLMNOP",
    "ghp_abcdefghijklmnopqrstuvwxyz012345",
])
def test_secrets_are_rejected_and_never_echoed(secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(mutate(minimal(), "models.0.display_name", f"prefix {secret}"))
    assert "models[0].display_name: looks like a secret" in str(info.value)
    assert secret not in str(info.value)


def test_secret_in_a_comment_is_rejected() -> None:
    text = dump(minimal()) + "# old key: sk-live-0123456789abcdef\n"
    with pytest.raises(ConfigError, match=r"line \d+: looks like a secret"):
        parse_config(text, "c.yaml")


def test_unpriced_model_loads_but_is_not_routable() -> None:
    cfg = mutate(minimal(), "models.0.price", {"published": False, "note": "open weights, no API"})
    model = parse(cfg).models[0]
    assert not model.routable and model.price.input_per_mtok is None
    host = {"published": False, "note": "host price", "input_per_mtok": 0.1, "output_per_mtok": 0.5}
    with pytest.raises(ConfigError, match=r"models\[0\]\.price\.source: is required"):
        parse(mutate(minimal(), "models.0.price", host))


def test_missing_cached_price_bills_at_input_price() -> None:
    model = parse(mutate(minimal(), "models.0.price.cached_input_per_mtok", None)).models[0]
    assert model.price.cached_input_per_mtok == model.price.input_per_mtok


def test_relative_sqlite_path_resolves_against_the_config_directory(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text(dump(mutate(minimal(), "store.sqlite", {"path": "data/my.db"})))
    assert load_config(path).store.sqlite.path == (tmp_path / "sub" / "data" / "my.db").resolve()


def test_yaml_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 3, column 1: is not valid YAML"):
        parse_config("version: 1\nmodels: [\n", "c.yaml")
    with pytest.raises(ConfigError, match="duplicate key 'version'"):
        parse_config("version: 1\nversion: 1\n", "c.yaml")
    with pytest.raises(ConfigError, match="top level"):
        parse_config("- 1\n", "c.yaml")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml")


def test_config_version_tracks_the_bytes() -> None:
    text = dump(minimal())
    a, b = parse_config(text, "c"), parse_config(text + "\n# comment\n", "c")
    assert a.config_version != b.config_version and len(a.config_version) == 12
    assert yaml.safe_load(text)  # sanity: the helper writes real YAML
