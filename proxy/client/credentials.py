"""The credentials ``login`` writes into a client's configuration.

When the daemon lets anonymous clients publish (no ``[auth]`` table, or ``[auth] anonymous = "all"``),
clients only need *a* value: npm refuses to publish without an ``_authToken`` line, twine and Maven want
a username and password. Otherwise ``login`` asks the daemon for a token, as ``aws codeartifact login``
asks CodeArtifact: ``POST /v1/authorization-token`` (GetAuthorizationToken), SigV4-signed by botocore
with the caller's AWS credentials (environment, ``AWS_PROFILE``, shared files), service
``codeartifact``. The token is never printed; errors name the daemon's answer, not the token.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import Session

from proxy.config.model import Config

# The username CodeArtifact's own login writes for twine and pip; the proxy ignores it.
USERNAME = "aws"
# What clients send when the daemon takes anonymous publishes: any non-empty value satisfies them.
ANONYMOUS_TOKEN = "anonymous"  # not a secret: the daemon ignores it
DEFAULT_DOMAIN = ("local", "000000000000")


class CredentialsError(Exception):
    """No token could be had; the message says why (never containing a secret)."""


@dataclass(frozen=True)
class ClientCredentials:
    username: str
    token: str
    anonymous: bool

    def __repr__(self) -> str:
        return f"ClientCredentials(username={self.username!r}, token='***', anonymous={self.anonymous})"


def requires_token(config: Config) -> bool:
    """Whether the daemon of ``config`` refuses anonymous publishes, so clients need a real token.

    Reads ``[auth] anonymous`` when the configuration model has it; a daemon without an ``[auth]``
    table serves everyone."""
    auth = getattr(config, "auth", None)
    return auth is not None and getattr(auth, "anonymous", "all") != "all"


def credentials_for(config: Config, base_url: str, *, timeout: float = 30.0) -> ClientCredentials:
    """The credentials to write for the daemon at ``base_url`` (see the module docstring)."""
    if not requires_token(config):
        return ClientCredentials(USERNAME, ANONYMOUS_TOKEN, anonymous=True)
    domain = getattr(config, "domain", None)
    name = getattr(domain, "name", DEFAULT_DOMAIN[0])
    owner = getattr(domain, "owner", DEFAULT_DOMAIN[1])
    return ClientCredentials(USERNAME, fetch_token(base_url, name, owner, timeout=timeout), anonymous=False)


def fetch_token(base_url: str, domain: str, owner: str, *, timeout: float = 30.0) -> str:
    """GetAuthorizationToken from the daemon, signed with the caller's AWS credentials."""
    session = Session()
    aws_credentials = session.get_credentials()
    if aws_credentials is None:
        raise CredentialsError(
            "the daemon requires authorization and no AWS credentials were found (set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY to a principal's keys)"
        )
    # The daemon has no region of its own and accepts any in the credential scope.
    region = session.get_config_variable("region") or "us-east-1"
    url = f"{base_url}v1/authorization-token"
    params = {"domain": domain, "domain-owner": owner}
    request = AWSRequest(method="POST", url=str(httpx.URL(url, params=params)), data=b"")
    SigV4Auth(aws_credentials.get_frozen_credentials(), "codeartifact", region).add_auth(request)
    try:
        response = httpx.post(
            url, params=params, headers=dict(request.headers.items()), content=b"", timeout=timeout
        )
    except httpx.HTTPError as error:
        raise CredentialsError(f"cannot reach the daemon at {base_url}: {error}") from None
    if response.status_code != 200:
        raise CredentialsError(
            f"the daemon at {base_url} refused GetAuthorizationToken: HTTP {response.status_code} "
            f"{_reason(response)}"
        )
    try:
        token = response.json()["authorizationToken"]
    except (ValueError, KeyError, TypeError):
        raise CredentialsError(f"the daemon at {base_url} sent no authorizationToken") from None
    if not isinstance(token, str) or not token:
        raise CredentialsError(f"the daemon at {base_url} sent an empty authorizationToken")
    return token


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("Message") or body.get("error") or "")[:200]
    return ""
