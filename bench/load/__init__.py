"""Service load benchmarks: modelyard over gRPC against a bare echo server and LiteLLM's Router."""
