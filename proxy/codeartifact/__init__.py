"""CodeArtifact domains: the API client (botocore), authorization tokens, repository endpoints."""

from proxy.codeartifact.domain import AuthorizationToken, DomainClient, DomainError
from proxy.codeartifact.endpoint import RepositoryEndpoints
from proxy.codeartifact.token import DomainHealth, TokenProvider

__all__ = [
    "AuthorizationToken",
    "DomainClient",
    "DomainError",
    "DomainHealth",
    "RepositoryEndpoints",
    "TokenProvider",
]
