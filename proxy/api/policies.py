"""The six *PermissionsPolicy operations: resource policies on the domain and on its repositories.

Documents are checked (proxy.auth.policy) before they are stored, so a malformed one is a 400 naming
what is wrong; they are kept sealed by proxy.auth.policy_store. ``policyRevision``, when given, must
be the current revision (optimistic locking, as CodeArtifact does), else 409.
"""

from __future__ import annotations

from typing import Any

from proxy.api.binding import Call, operation
from proxy.api.errors import conflict, not_found, validation
from proxy.api.tokens import check_domain
from proxy.auth.authorizer import AUTHORIZER, Authorizer
from proxy.auth.policy import PolicyInvalid, parse
from proxy.auth.policy_store import DOMAIN_KEY, RevisionMismatch, StoredPolicy


def _services(call: Call) -> tuple[Authorizer, frozenset[str]]:
    """The authorizer, and the domain's repositories."""
    authorizer = call.request.app[AUTHORIZER]
    return authorizer, authorizer.repositories


def _target(call: Call) -> tuple[Authorizer, str, str, tuple[str, ...]]:
    """The policy's key in the store, its resource ARN and what a statement without Resource covers."""
    authorizer, repositories = _services(call)
    check_domain(authorizer, call.params)
    domain = authorizer.principals.domain
    repository = call.params.get("repository")
    if repository is None:
        return authorizer, DOMAIN_KEY, domain.arn(), domain.contents()
    if repository not in repositories:
        raise not_found("repository", repository)
    return authorizer, repository, domain.repository_arn(repository), domain.repository_contents(repository)


def _shape(arn: str, stored: StoredPolicy) -> dict[str, Any]:
    return {"policy": {"resourceArn": arn, "revision": stored.revision, "document": stored.document}}


async def _put(call: Call) -> dict[str, Any]:
    authorizer, key, arn, covers = _target(call)
    document = call.params["policyDocument"]
    try:
        parse(document, covers)
    except PolicyInvalid as exc:
        raise validation(f"policyDocument: {exc}", "OTHER") from None
    try:
        stored = await authorizer.policies.put(key, document, call.params.get("policyRevision"))
    except RevisionMismatch:
        raise conflict(_kind(key), arn, "policyRevision is not the current revision of the policy") from None
    return _shape(arn, stored)


async def _get(call: Call) -> dict[str, Any]:
    authorizer, key, arn, _ = _target(call)
    stored = authorizer.policies.get(key)
    if stored is None:
        raise not_found(_kind(key), arn, f"{arn} has no permissions policy")
    return _shape(arn, stored)


async def _delete(call: Call) -> dict[str, Any]:
    authorizer, key, arn, _ = _target(call)
    try:
        stored = await authorizer.policies.delete(key, call.params.get("policyRevision"))
    except RevisionMismatch:
        raise conflict(_kind(key), arn, "policyRevision is not the current revision of the policy") from None
    if stored is None:
        raise not_found(_kind(key), arn, f"{arn} has no permissions policy")
    return _shape(arn, stored)


def _kind(key: str) -> str:
    return "domain" if key == DOMAIN_KEY else "repository"


for _name, _handler in (
    ("PutDomainPermissionsPolicy", _put),
    ("GetDomainPermissionsPolicy", _get),
    ("DeleteDomainPermissionsPolicy", _delete),
    ("PutRepositoryPermissionsPolicy", _put),
    ("GetRepositoryPermissionsPolicy", _get),
    ("DeleteRepositoryPermissionsPolicy", _delete),
):
    operation(_name)(_handler)
