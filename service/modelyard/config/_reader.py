"""Typed field readers that record a `Problem` instead of raising, so one pass reports every error.

Each reader returns a usable placeholder after recording a problem; the caller raises
`ConfigError` at the end if anything was recorded.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

from modelyard.config.errors import Problem

REQUIRED: Any = object()
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Values that look like credentials. Secrets come from the environment, never from the file.
SECRET = re.compile(
    r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_\-]{6,}|sk_(live|test)_[A-Za-z0-9]{6,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{30,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|Bearer\s+[A-Za-z0-9._\-]{12,})"
)


def redact(s: str) -> str:
    return s[:4] + "…" if len(s) > 4 else "…"


def show(value: Any) -> str:
    """A value as the error message quotes it (YAML spelling for null and booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if SECRET.search(value):
            return f'"{redact(value)}" (redacted)'
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '≥'} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '≤'} {hi:g}"
    return ""


class Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def error(self, path: str, message: str, fix: str) -> None:
        self.problems.append(Problem(path, message, fix))

    # -- structure ---------------------------------------------------------------------------
    def mapping(self, raw: Any, path: str, allowed: Iterable[str], fix: str) -> dict[str, Any]:
        """`raw` as a dict with only `allowed` keys; None (an empty section) reads as {}."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(path, f"must be a mapping, got {show(raw)}", fix)
            return {}
        names = list(allowed)
        for key in raw:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
                self.error(join(path, str(key)), "unknown key", f"{hint} (remove or rename it)")
        return {k: v for k, v in raw.items() if k in names}

    def seq(self, raw: Any, path: str, fix: str) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(path, f"must be a list, got {show(raw)}", fix)
            return []
        return raw

    def _get(self, d: Mapping[str, Any], key: str, path: str, default: Any, fix: str) -> Any:
        if key not in d or (d[key] is None and default is not REQUIRED):
            if default is REQUIRED:
                self.error(join(path, key), "is required", fix)
            return default
        return d[key]

    # -- scalars -----------------------------------------------------------------------------
    def number(self, d: Mapping[str, Any], key: str, path: str, fix: str, *,
               default: Any = REQUIRED, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> Any:
        """A number (int or float; never a bool) within the given bounds."""
        value = self._get(d, key, path, default, fix)
        if value is REQUIRED:
            return lo if lo is not None else 0
        if value is default:
            return default
        kind = "a whole number" if integer else "a number"
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer and not isinstance(value, int):
            ok = isinstance(value, float) and value.is_integer()
        if ok:
            ok = value == value and not (lo is not None and (value < lo or (lo_open and value == lo))) \
                and not (hi is not None and (value > hi or (hi_open and value == hi)))
        if not ok:
            rng = _range_text(lo, hi, lo_open, hi_open)
            self.error(join(path, key), f"must be {kind}{rng}, got {show(value)}", fix)
            return default if default is not REQUIRED else (lo if lo is not None else 0)
        return int(value) if integer else float(value)

    def boolean(self, d: Mapping[str, Any], key: str, path: str, fix: str, default: Any = REQUIRED) -> bool:
        value = self._get(d, key, path, default, fix)
        if value is REQUIRED:
            return False
        if not isinstance(value, bool):
            self.error(join(path, key), f"must be true or false, got {show(value)}", fix)
            return bool(default) if default is not REQUIRED else False
        return value

    def text(self, d: Mapping[str, Any], key: str, path: str, fix: str, *, default: Any = REQUIRED,
             pattern: re.Pattern[str] | None = None, what: str = "a non-empty string") -> Any:
        value = self._get(d, key, path, default, fix)
        if value is REQUIRED:
            return ""
        if value is default and default is None:
            return None
        if not isinstance(value, str) or not value.strip() or (pattern and not pattern.match(value)):
            self.error(join(path, key), f"must be {what}, got {show(value)}", fix)
            return default if default is not REQUIRED else ""
        return value

    def choice(self, d: Mapping[str, Any], key: str, path: str, options: tuple[str, ...], fix: str,
               default: Any = REQUIRED) -> str:
        value = self._get(d, key, path, default, fix)
        if value is REQUIRED:
            return options[0]
        if value not in options:
            self.error(join(path, key), f"must be one of {' | '.join(options)}, got {show(value)}", fix)
            return default if default is not REQUIRED else options[0]
        return str(value)

    def env_name(self, d: Mapping[str, Any], key: str, path: str, purpose: str,
                 default: Any = REQUIRED) -> Any:
        """A `*_env` field: the NAME of an environment variable, never the secret itself."""
        return self.text(
            d, key, path,
            f"write the name of the environment variable that holds {purpose} "
            "(e.g. ANTHROPIC_API_KEY); the value itself is read from the environment at startup",
            default=default, pattern=ENV_NAME,
            what="an environment variable name (UPPER_CASE letters, digits, _)",
        )

    def url(self, d: Mapping[str, Any], key: str, path: str, fix: str, *, default: Any = REQUIRED,
            schemes: tuple[str, ...] = ("http", "https")) -> Any:
        value = self.text(d, key, path, fix, default=default)
        if not value:
            return value
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not parsed.netloc:
            self.error(join(path, key), f"must be a {' or '.join(schemes)} URL, got {show(value)}", fix)
            return default if default is not REQUIRED else ""
        if parsed.password:
            self.error(join(path, key), "has a password in the URL",
                       "secrets never go in the file: drop the credentials from the URL")
        return value

    def day(self, d: Mapping[str, Any], key: str, path: str, fix: str, default: Any = REQUIRED) -> Any:
        value = self._get(d, key, path, default, fix)
        if value is REQUIRED or value is None:
            return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        self.error(join(path, key), f"must be a date YYYY-MM-DD, got {show(value)}", fix)
        return None

    def names(self, d: Mapping[str, Any], key: str, path: str, fix: str, *,
              vocabulary: Iterable[str] | None = None, pattern: re.Pattern[str] | None = SLUG,
              what: str = "a lowercase name") -> tuple[str, ...]:
        """A list of distinct names, each from `vocabulary` (if given) or matching `pattern`."""
        raw = self.seq(d.get(key), join(path, key), fix)
        vocab = list(vocabulary) if vocabulary is not None else None
        out: list[str] = []
        for i, item in enumerate(raw):
            where = join(join(path, key), i)
            if vocab is not None and item not in vocab:
                close = difflib.get_close_matches(str(item), vocab, n=1, cutoff=0.6)
                hint = f"use one of: {', '.join(vocab)}"
                hint = f"did you mean '{close[0]}'? ({hint})" if close else hint
                self.error(where, f"unknown name {show(item)}", hint)
            elif vocab is None and (not isinstance(item, str) or (pattern and not pattern.match(item))):
                self.error(where, f"must be {what}, got {show(item)}", fix)
            elif item in out:
                self.error(where, f"{show(item)} is listed twice", "list each name once")
            else:
                out.append(item)
        return tuple(out)
