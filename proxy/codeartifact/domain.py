"""The CodeArtifact API for one domain: GetAuthorizationToken and GetRepositoryEndpoint via botocore.

botocore brings the standard AWS credential chain (environment, shared config and credentials
files, profiles with ``role_arn``/``source_profile``, SSO, container and instance metadata), the
region's endpoint and SigV4; this module only adapts it:

- botocore is synchronous, so every call runs on a worker thread (``asyncio.to_thread``);
- a client is built lazily, and built again from a fresh botocore session after a failure that
  new credentials could fix ("no credentials", "access denied"): credentials that appear later
  (an environment change, a credentials file written after start) are picked up without a restart;
- failures become one ``DomainError`` with a short reason that is safe to show (``/readyz``, logs):
  ``no credentials``, ``access denied``, ``throttled``, ``unreachable`` or ``error: <code>``.

Concurrency: one ``DomainClient`` per domain, shared by the token provider and the endpoint cache.
botocore clients are thread-safe; building one is not, so that happens under a lock.

botocore logs response bodies at DEBUG, and a GetAuthorizationToken body is the token: a log filter
installed here replaces response bodies in those records.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigParseError,
    CredentialRetrievalError,
    HTTPClientError,
    LoginError,
    MetadataRetrievalError,
    NoAuthTokenError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from proxy.config.model import CodeArtifactDomain, Format

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger(__name__)

NO_CREDENTIALS = "no credentials"
ACCESS_DENIED = "access denied"
THROTTLED = "throttled"
UNREACHABLE = "unreachable"

_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    ProfileNotFound,
    ConfigParseError,
    SSOError,
    TokenRetrievalError,
    NoAuthTokenError,
    LoginError,
    MetadataRetrievalError,
)
_ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationTokenException",
    }
)
_THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
# Our own token provider backs off between attempts; botocore only smooths over a single blip.
_BOTOCORE_MAX_ATTEMPTS = 2


class DomainError(Exception):
    """A CodeArtifact API call failed. ``reason`` is one of the short reasons above."""

    def __init__(self, domain: str, reason: str, detail: str = "") -> None:
        self.domain = domain
        self.reason = reason
        self.detail = detail
        super().__init__(f"codeartifact domain {domain!r}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class AuthorizationToken:
    """A token and when it expires (epoch seconds), as GetAuthorizationToken answered."""

    value: str = field(repr=False)
    expiration: float


def classify(exc: Exception) -> tuple[str, str]:
    """(reason, safe detail) for a botocore failure."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _ACCESS_DENIED_CODES:
            return ACCESS_DENIED, f"{code}: {message}"
        if code in _THROTTLING_CODES or status == 429:
            return THROTTLED, code
        return f"error: {code}", message
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return NO_CREDENTIALS, str(exc)
    if isinstance(exc, BotocoreConnectionError | HTTPClientError):
        return UNREACHABLE, str(exc)
    return f"error: {type(exc).__name__}", str(exc)


class DomainClient:
    """botocore's ``codeartifact`` client for one ``[codeartifact.NAME]`` domain, used off the loop."""

    def __init__(
        self, config: CodeArtifactDomain, *, connect_timeout: float = 10.0, read_timeout: float = 30.0
    ) -> None:
        self.config = config
        self._timeouts = (connect_timeout, read_timeout)
        self._client: BaseClient | None = None
        self._lock = threading.Lock()
        install_log_redaction()

    @property
    def name(self) -> str:
        return self.config.name

    async def get_authorization_token(self) -> AuthorizationToken:
        result = await self._call(
            "get_authorization_token",
            domain=self.config.domain,
            domainOwner=self.config.domain_owner,
            durationSeconds=int(self.config.duration),
        )
        # botocore parses the Timestamp shape (epoch number or ISO string on the wire) to a datetime.
        expiration: datetime.datetime = result["expiration"]
        return AuthorizationToken(result["authorizationToken"], expiration.timestamp())

    async def get_repository_endpoint(self, repository: str, format: Format) -> str:
        result = await self._call(
            "get_repository_endpoint",
            domain=self.config.domain,
            domainOwner=self.config.domain_owner,
            repository=repository,
            format=format,
        )
        return str(result["repositoryEndpoint"])

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._call_blocking, operation, params)

    def _call_blocking(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            client = self._get_client()
            return getattr(client, operation)(**params)
        except (BotoCoreError, ClientError) as exc:
            reason, detail = classify(exc)
            if reason in (NO_CREDENTIALS, ACCESS_DENIED):
                # New credentials may show up later: resolve them again from a fresh session next time.
                # Dropped, not closed: another thread may still be using it.
                self._discard_client()
            raise DomainError(self.name, reason, detail) from None

    def call_as_is(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call the client's ``operation`` (botocore's method name) on this thread, for the /v1 pass-through:
        botocore's result and errors come back unchanged, so CodeArtifact's error codes reach the caller."""
        client = self._get_client()
        try:
            return getattr(client, operation)(**params)
        except (BotoCoreError, ClientError) as exc:
            if classify(exc)[0] in (NO_CREDENTIALS, ACCESS_DENIED):
                self._discard_client()
            raise

    def _discard_client(self) -> None:
        with self._lock:
            self._client = None

    def _get_client(self) -> BaseClient:
        # botocore's session and client are imported here, on a worker thread, by the first call: a
        # daemon that fronts no CodeArtifact domain never takes their memory.
        import botocore.session
        from botocore.config import Config

        with self._lock:
            if self._client is None:
                session = botocore.session.Session(profile=self.config.profile)
                connect_timeout, read_timeout = self._timeouts
                self._client = session.create_client(
                    "codeartifact",
                    region_name=self.config.region,
                    endpoint_url=self.config.endpoint_url,
                    config=Config(
                        connect_timeout=connect_timeout,
                        read_timeout=read_timeout,
                        retries={"mode": "standard", "total_max_attempts": _BOTOCORE_MAX_ATTEMPTS},
                        user_agent_extra="codeartifact-proxy",
                    ),
                )
            return self._client


class _RedactResponseBodies(logging.Filter):
    """Replaces the body of botocore's "Response body" DEBUG records: it may hold a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, bytes | bytearray) for arg in record.args):
            record.args = tuple(
                b"<redacted by codeartifact-proxy>" if isinstance(arg, bytes | bytearray) else arg
                for arg in record.args
            )
        return True


def install_log_redaction() -> None:
    """Idempotent: attach the redaction filter to the botocore logger that prints response bodies."""
    logger = logging.getLogger("botocore.parsers")
    if not any(isinstance(existing, _RedactResponseBodies) for existing in logger.filters):
        logger.addFilter(_RedactResponseBodies())
