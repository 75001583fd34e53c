#!/usr/bin/env bash
# Tests start their own redis-server processes on free ports; this only makes sure the binary exists.
set -euo pipefail
command -v redis-server >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  exit 0
fi
echo "redis-server is missing: install it (Debian: apt-get install redis-server)" >&2
exit 1
