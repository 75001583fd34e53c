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
MY_REPLAYED = "modelyard.replayed"
MY_DUPLICATE = "modelyard.duplicate"
MY_VERDICT = "modelyard.verdict"
MY_RELEASED = "modelyard.released_usd"
MY_INPUT_TOKENS = "modelyard.usage.input_tokens"
MY_OUTPUT_TOKENS = "modelyard.usage.output_tokens"
MY_LATENCY_MS = "modelyard.latency_ms"
MY_JOB_STEPS = "modelyard.job.steps"
MY_JOB_LATENCY = "modelyard.job.latency_ms"
MY_JOB_MODELS = "modelyard.job.models"

# Metric label keys (bounded: config-defined ids, enums, or capped values; never job or decision ids)
LABEL_TENANT = "tenant"
LABEL_KEY_ID = "key_id"
LABEL_MODEL = "model"
LABEL_ROLE = "role"
LABEL_ROLE_MIX = "role_mix"  # sorted distinct roles of a job joined with "+", e.g. "executor+planner"
LABEL_TASK_CLASS = "task_class"  # capped at TASK_CLASS_LABEL_CAP distinct values, then "other"
LABEL_EXPLORATION = "exploration"
LABEL_STATUS = "status"
LABEL_WINDOW = "window"
LABEL_SCOPE = "scope"
LABEL_SUBJECT = "subject"
LABEL_OPERATION = "operation"
LABEL_RPC_METHOD = "rpc.method"
LABEL_RPC_SERVICE = "rpc.service"
LABEL_GRPC_CODE = "rpc.grpc.status_code"
LABEL_OVERFLOW = "other"
TASK_CLASS_LABEL_CAP = 32

# modelyard's metrics (modelyard.*); units follow UCUM as the OTel conventions ask
METRIC_SPEND = "modelyard.spend"  # counter, USD; by tenant, key_id, model
METRIC_DECISIONS = "modelyard.decisions"  # counter; by tenant, model, role, exploration, task_class
METRIC_OUTCOMES = "modelyard.outcomes"  # counter; by tenant, model, role, status
METRIC_STEP_DURATION = "modelyard.step.duration"  # histogram, s; harness-reported step latency
METRIC_JOB_COST = "modelyard.job.cost"  # histogram, USD; per finished job by role_mix, status
METRIC_JOB_DURATION = "modelyard.job.duration"  # histogram, s; per finished job by role_mix, status
METRIC_BUDGET_REMAINING = "modelyard.budget.remaining"  # gauge, USD; by tenant, scope, subject, window
METRIC_STORE_DURATION = "modelyard.store.duration"  # histogram, s; by operation
METRIC_CORE_DURATION = "modelyard.core.duration"  # histogram, s; by operation
METRIC_RPC_DURATION = "rpc.server.duration"  # histogram, ms (RPC semconv); by rpc.service, rpc.method, code
UNIT_USD = "USD"
JOB_COST_BUCKETS_USD = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100)
JOB_DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
STORE_DURATION_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
RPC_DURATION_BUCKETS_MS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 5000)

# Attribute keys that may carry credentials; dropped from every exported span (see redact.py).
SENSITIVE_KEY_PARTS = ("authorization", "api_key", "api-key", "apikey", "x-api-key", "cookie", "password")
REDACTED = "[redacted]"
