#!/usr/bin/env bash
# Regenerates the committed Python code and type stubs from proto/modelyard/v1.
# CI runs this and fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=service
rm -f "$out"/modelyard/v1/*_pb2*.py "$out"/modelyard/v1/*_pb2*.pyi
python -m grpc_tools.protoc -Iproto \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/modelyard/v1/*.proto
touch "$out/modelyard/v1/__init__.py"
