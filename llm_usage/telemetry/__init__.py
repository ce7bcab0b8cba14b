"""OpenTelemetry export of each call, opt-in (``llm_usage_otlp_endpoint``): what a row
says in the GenAI semantic conventions' terms (``semconv.py``, pure), and the OTLP/HTTP
exporter that sends it, off the event loop (``otlp.py``, imported only when the option is
set, so a proxy without it never loads the SDK)."""
