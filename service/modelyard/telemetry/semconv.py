"""Pinned attribute and metric names: the OpenTelemetry GenAI semantic conventions and modelyard's own.

The GenAI conventions are still in development (pinned here to semantic-conventions v1.37 names);
every name the service emits lives in this one module, so a rename is a one-line change.
"""

from __future__ import annotations

SEMCONV_VERSION = "1.37.0"

# GenAI client spans and metrics (gen_ai.*)
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # the older name; still read by many dashboards
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHED_INPUT_TOKENS_LEGACY = "gen_ai.usage.cached_input_tokens"
GEN_AI_USAGE_COST = "gen_ai.usage.cost"  # USD; no standard yet, read by dashboards today
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"  # only with telemetry.record_content
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"  # only with telemetry.record_content
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

OPERATION_CHAT = "chat"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"

METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
# Bucket boundaries the GenAI conventions advise.
TOKEN_USAGE_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

# modelyard's own attributes (modelyard.*)
MY_TENANT = "modelyard.tenant"
MY_KEY_ID = "modelyard.key_id"
MY_JOB_ID = "modelyard.job_id"
MY_DECISION_ID = "modelyard.decision_id"
MY_ROLE = "modelyard.role"
MY_TASK_CLASS = "modelyard.task_class"
MY_MODEL = "modelyard.model"
MY_PROVIDER = "modelyard.provider"
MY_FALLBACKS = "modelyard.fallbacks"
MY_EXPECTED_COST = "modelyard.expected.cost_usd"
MY_EXPECTED_SUCCESS = "modelyard.expected.success_probability"
MY_EXPECTED_LATENCY = "modelyard.expected.latency_ms"
MY_EXPLORATION = "modelyard.exploration"
MY_STICKY = "modelyard.sticky"
MY_BUDGET_REMAINING = "modelyard.budget.remaining_usd"
MY_RESERVED = "modelyard.reserved_usd"
MY_OUTCOME_STATUS = "modelyard.outcome.status"
MY_CHARGED = "modelyard.charged_usd"
MY_JOB_STATUS = "modelyard.job.status"
MY_JOB_COST = "modelyard.job.cost_usd"
MY_ATTEMPT = "modelyard.attempt"
