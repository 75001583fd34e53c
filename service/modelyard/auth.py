"""API keys: generation, hashing, and turning `authorization` metadata into a principal.

The config holds only SHA-256 hashes of keys. A key never appears in logs or error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from modelyard.errors import PermissionDenied, Unauthenticated

SCOPES = ("route", "report", "read", "admin")
KEY_PREFIX = "my_"
_BEARER = "bearer "
KNOWN_KEYS_MAX = 4096  # bounded by the number of configured keys anyway: only valid keys are cached


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant, the key's id (never the key) and its scopes."""

    tenant: str
    key_id: str
    scopes: frozenset[str]

    def require(self, scope: str, method: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(
                f"key '{self.key_id}' lacks the '{scope}' scope needed by {method}; "
                f"add '{scope}' to its scopes in the config"
            )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key: prefix plus 32 random bytes, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The key from `authorization: Bearer <key>` metadata, or None."""
    for name, value in metadata or ():
        if name.lower() != "authorization":
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if text[: len(_BEARER)].lower() == _BEARER:
            token = text[len(_BEARER) :].strip()
            return token or None
        return None
    return None


class KeyIndex:
    """Maps key hashes to principals; built once per config and swapped whole on reload."""

    def __init__(self, entries: Iterable[tuple[str, Principal]]) -> None:
        self._by_hash: dict[str, Principal] = dict(entries)
        self._hashes = {h: h for h in self._by_hash}
        # Keys that authenticated before, so a caller's every RPC does not hash its key again. Only
        # valid keys enter, so an unknown key always takes the hash-and-compare path below; the
        # cache lives and dies with this index, hence with the config it was built from.
        self._known: dict[str, Principal] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthenticated(
                "no API key: send 'authorization: Bearer <key>' metadata "
                "(create one with `modelyard keys new`)"
            )
        known = self._known.get(key)
        if known is not None:
            return known
        digest = hash_key(key)
        # The dict lookup is keyed by the hash, which leaks nothing about the key; the final
        # comparison is constant-time so equality itself is never decided byte by byte.
        stored = self._hashes.get(digest, "0" * 64)
        if not hmac.compare_digest(stored, digest) or digest not in self._by_hash:
            raise Unauthenticated("unknown API key: check the key, or ask the operator to add its hash")
        who = self._by_hash[digest]
        if len(self._known) < KNOWN_KEYS_MAX:
            self._known[key] = who
        return who
