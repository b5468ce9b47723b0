"""Vertex AI's Gemini endpoints on the wire, as the google-genai SDK calls them with
``vertexai=True``.

Paths (``{version}`` is ``v1beta1`` or ``v1``):

- project mode: ``/{version}/projects/{p}/locations/{l}/publishers/google/models/{m}:{verb}``
  (``generateContent``, ``streamGenerateContent?alt=sse``, ``countTokens``, ``predict``
  for embeddings), authenticated with ``Authorization: Bearer <OAuth token>``;
- express mode (an API key, no project): ``/{version}/publishers/google/models/{m}:{verb}``
  with ``x-goog-api-key``;
- ``models.get`` in both modes: ``GET /{version}/publishers/google/models/{m}``.

Request and answer bodies are Gemini's (the same ``GenerateContentResponse``), except
embeddings (``:predict``: ``instances`` in, ``predictions`` out), the Model resource (a
publisher model) and error messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .errors import ErrorReply, error_body
from .requests import Action, EmbedItem, EmbedRequest

__all__ = [
    "VERTEX_VERBS",
    "bearer_token",
    "invalid_token",
    "predict_request",
    "predict_response",
    "publisher_model",
    "publisher_model_not_found",
    "resource_exhausted",
]

#: ``models/{m}:{verb}`` -> action on Vertex AI.
VERTEX_VERBS: dict[str, Action] = {
    "generateContent": "generate",
    "streamGenerateContent": "stream",
    "countTokens": "count_tokens",
    "predict": "embed",
    "embedContent": "embed",
}


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The OAuth token of an ``Authorization: Bearer ...`` header, if any."""
    for key, value in headers:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def invalid_token() -> ErrorReply:
    """Vertex AI's 401 for a missing, expired or wrong OAuth token."""
    return ErrorReply(
        401,
        error_body(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access "
            "token, login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                    "metadata": {"service": "aiplatform.googleapis.com"},
                }
            ],
        ),
    )


def publisher_model_not_found(resource: str) -> ErrorReply:
    """Vertex AI's 404 for a model it does not serve (``resource``: the model path,
    ``projects/p/locations/l/publishers/google/models/m``)."""
    return ErrorReply(
        404,
        error_body(
            404,
            f"Publisher Model `{resource}` was not found or your project does not have "
            f"access to it. Please ensure you are using a valid model version. For more "
            f"information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/"
            f"learn/model-versions",
        ),
    )


def resource_exhausted() -> ErrorReply:
    """Vertex AI's 429 (no QuotaFailure or RetryInfo details: Vertex sends none)."""
    return ErrorReply(
        429,
        error_body(
            429,
            "Resource exhausted. Please try again later. Please refer to "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for "
            "more details.",
        ),
    )


def publisher_model(model: str, display_name: str, version: str) -> dict[str, Any]:
    """The publisher model ``models.get`` answers on Vertex AI."""
    return {
        "name": f"publishers/google/models/{model}",
        "versionId": version,
        "displayName": display_name,
        "openSourceCategory": "PROPRIETARY",
        "launchStage": "GA",
    }


def predict_request(body: dict[str, Any]) -> EmbedRequest:
    """``:predict`` for embeddings: ``{"instances": [{"content": text}], "parameters":
    {"outputDimensionality"?}}`` read as an embedding request."""
    instances = body.get("instances")
    params = body.get("parameters")
    dim = params.get("outputDimensionality") if isinstance(params, dict) else None
    items = tuple(
        EmbedItem(str(i.get("content", "")), dim)
        for i in (instances if isinstance(instances, list) else [])
        if isinstance(i, dict)
    )
    return EmbedRequest(items, batch=True)


def predict_response(vectors: Sequence[Sequence[float]], tokens: Sequence[int]) -> dict[str, Any]:
    """The ``:predict`` answer: one prediction per instance."""
    return {
        "predictions": [
            {
                "embeddings": {
                    "values": list(v),
                    "statistics": {"truncated": False, "token_count": n},
                }
            }
            for v, n in zip(vectors, tokens, strict=True)
        ],
        "metadata": {"billableCharacterCount": sum(tokens) * 4},
    }
