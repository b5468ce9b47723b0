"""A Gemini-API-compatible HTTP gateway in front of the failover manager.

Any google-genai client pointed at it (``http_options=HttpOptions(base_url=...)``) gets
the manager's retries, breakers, rate-limit handling, capability routing and stream
continuation without a code change. See docs/gateway.md.

- :mod:`.app`: the endpoints (generateContent, streamGenerateContent, countTokens,
  embedContent, batchEmbedContents, models list/get) and the ASGI app;
- :mod:`.mapping`: Gemini JSON <-> the manager's requests and results (what is refused);
- :mod:`.errors`: manager failures -> Gemini errors;
- :mod:`.routing`: model names -> chains; :mod:`.auth`: gateway keys, bind rules;
- :mod:`.progress`: provenance while a request runs; :mod:`.serve`: the CLI's server.
"""

from gemini_failover.gateway.app import build_gateway_app
from gemini_failover.gateway.auth import gateway_security
from gemini_failover.gateway.serve import GatewayOptions, run

__all__ = ["GatewayOptions", "build_gateway_app", "gateway_security", "run"]
