"""llm-usage: a mitmproxy addon that logs the token usage and cost of every LLM call."""

__version__ = "0.1.0"
