"""Model providers behind one small interface (`Provider`), used by Dispatch to call the chosen model."""

from modelyard.providers.base import (
    ChatRequest,
    Chunk,
    Finish,
    Message,
    Provider,
    ProviderError,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from modelyard.providers.pool import ProviderPool

__all__ = [
    "ChatRequest", "Chunk", "Finish", "Message", "Provider", "ProviderError", "ProviderPool", "TextDelta",
    "ToolCallDelta", "Usage", "UsageUpdate",
]
