#!/usr/bin/env bash
# The Rust front links the system libsqlite3 (the one Python's sqlite3 module uses); building it needs
# the development files.
set -euo pipefail
pkg-config --exists sqlite3 2>/dev/null && exit 0
[ -e /usr/lib/x86_64-linux-gnu/libsqlite3.so ] || [ -e /usr/lib/libsqlite3.so ] || [ -e /usr/lib64/libsqlite3.so ] || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsqlite3-dev >/dev/null
    exit 0
  fi
  echo "libsqlite3 development files are missing: install them (Debian: apt-get install libsqlite3-dev)" >&2
  exit 1
}
