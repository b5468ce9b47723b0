"""How one endpoint's google-genai client is made: the Gemini API with an API key, or
Vertex AI (express mode with an API key; project and location with a fixed OAuth token
or Application Default Credentials).

Application Default Credentials are looked up by ``google.auth.default()``, which reads
files and may ask the metadata server: the backend makes such a client in a worker
thread (see :attr:`ClientSpec.blocking`), never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gemini_failover.gemini import errors
from gemini_failover.gemini.uploads import FileCache, UploadedFile
from gemini_failover.protocol import Media

if TYPE_CHECKING:
    from google import genai

#: The Gemini API version used when a gemini_api endpoint names none.
GEMINI_API_VERSION = "v1beta"


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """What one endpoint's client is made of. Holds secrets: never logged (its repr
    leaves them out)."""

    api_key: str | None = None
    base_url: str | None = None
    #: None: the SDK's default for the kind (v1beta1 on Vertex AI)
    api_version: str | None = GEMINI_API_VERSION
    vertex: bool = False
    project: str | None = None
    location: str | None = None
    #: a fixed OAuth bearer token for Vertex AI (else ADC)
    access_token: str | None = None

    def __repr__(self) -> str:
        kind = "vertex" if self.vertex else "gemini_api"
        return f"ClientSpec({kind}, base_url={self.base_url!r}, project={self.project!r})"

    @property
    def kind(self) -> str:
        return "vertex" if self.vertex else "gemini_api"

    @property
    def blocking(self) -> bool:
        """Making the client looks up Application Default Credentials (I/O)."""
        return self.vertex and self.api_key is None and self.access_token is None

    @property
    def uploads(self) -> bool:
        """Whether the endpoint has a Files API (Vertex AI has none)."""
        return not self.vertex


def make_client(spec: ClientSpec) -> genai.Client:
    """The google-genai client for ``spec``, SDK retries off (the manager retries)."""
    from google import genai
    from google.genai import types

    options = types.HttpOptions(
        base_url=spec.base_url,
        api_version=spec.api_version,
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    if not spec.vertex:
        return genai.Client(api_key=spec.api_key, http_options=options)
    if spec.api_key is not None:  # express mode
        return genai.Client(vertexai=True, api_key=spec.api_key, http_options=options)
    credentials: Any = None
    if spec.access_token is not None:
        import google.oauth2.credentials

        # a token without an expiry is used as it is, never refreshed
        credentials = google.oauth2.credentials.Credentials(token=spec.access_token)  # type: ignore[no-untyped-call]
    return genai.Client(
        vertexai=True,
        project=spec.project,
        location=spec.location,
        credentials=credentials,  # None: Application Default Credentials
        http_options=options,
    )


class NoUploads(FileCache):
    """The file cache of an endpoint without a Files API (Vertex AI): media that are
    not inline are refused with the reason. The router keeps such requests off these
    endpoints (a capability: ``file_uploads``), so this is the backstop."""

    async def acquire(self, media: Media) -> UploadedFile:
        raise errors.refused(
            f"{media.label}: Vertex AI endpoints have no Files API, and the file is too "
            "large to send inline"
        )
