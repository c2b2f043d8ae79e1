"""mas: a small multi-agent system on the official Anthropic SDK, built up by the course's notebooks."""

from mas.llm import make_async_client, make_client, text_of, usage_of

__all__ = ["make_client", "make_async_client", "text_of", "usage_of"]
