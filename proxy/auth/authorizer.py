"""The authorization state of one application: principals, the token keeper, the permissions policies,
the anonymous mode and the audit log, and the one decision everything asks: may this caller do this
action on this resource?

Rules, in order: what ``[auth] anonymous`` lets anyone do is allowed to everyone ("all": everything,
"read": reading, "none": nothing); an admin principal may do everything; otherwise IAM's evaluation
over the domain's policy and, for a repository, the repository's policy (proxy.auth.policy), where
GetAuthorizationToken is allowed to every principal that no policy explicitly denies it.

Concurrency: use from the application's event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Container
from contextvars import ContextVar
from dataclasses import dataclass

from aiohttp import web

from proxy.auth.audit import AuditLog
from proxy.auth.policy import Policy, evaluate, parse
from proxy.auth.policy_store import DOMAIN_KEY, PolicyStore
from proxy.auth.principals import Principal, Principals
from proxy.auth.tokens import TokenKeeper
from proxy.config.loader import ConfigError
from proxy.config.model import Config

READ_ACTION = "ReadFromRepository"
# Every principal may get a token for itself (unless a policy denies it): a token carries no more
# rights than its principal has. IAM would ask an identity policy, which the proxy does not have.
SELF_SERVICE = frozenset({"GetAuthorizationToken"})
# /v1 operations that change nothing; the rest are writes, audited and refused to "read" anonymity.
_READ_PREFIXES = ("Get", "List", "Describe")


def is_read(action: str) -> bool:
    return action == READ_ACTION or action.startswith(_READ_PREFIXES)


@dataclass
class Authorizer:
    principals: Principals
    tokens: TokenKeeper
    policies: PolicyStore
    audit: AuditLog
    anonymous_mode: str
    repositories: Container[str]  # the domain's repositories, which a policy may be attached to

    @classmethod
    def open(cls, config: Config, policies: PolicyStore, repositories: Container[str]) -> Authorizer:
        principals = Principals(config)
        return cls(
            principals=principals,
            tokens=TokenKeeper.load(config.cache.key_file, principals.domain.name),
            policies=policies,
            audit=_audit_log(config),
            anonymous_mode=config.auth.anonymous,
            repositories=repositories,
        )

    def close(self) -> None:
        self.audit.close()

    @property
    def anonymous(self) -> Principal:
        return self.principals.anonymous

    def anonymous_may(self, action: str) -> bool:
        return self.anonymous_mode == "all" or (self.anonymous_mode == "read" and is_read(action))

    def allowed(self, principal: Principal, action: str, repository: str | None) -> bool:
        """May ``principal`` do ``action`` (an operation name, or ReadFromRepository...) on
        ``repository`` (None: on the domain)?"""
        if self.anonymous_may(action) or principal.admin:
            return True
        domain = self.principals.domain
        resource = domain.arn() if repository is None else domain.repository_arn(repository)
        verdict = evaluate(principal, f"codeartifact:{action}", resource, self._policies_for(repository))
        if verdict == "implicit":
            return action in SELF_SERVICE and not principal.anonymous
        return verdict == "allow"

    def resource_arn(self, repository: str | None) -> str:
        domain = self.principals.domain
        return domain.arn() if repository is None else domain.repository_arn(repository)

    def _policies_for(self, repository: str | None) -> list[Policy]:
        domain = self.principals.domain
        found: list[Policy] = []
        stored = self.policies.get(DOMAIN_KEY)
        if stored is not None:
            found.append(_parsed(stored.document, domain.contents()))
        if repository is not None:
            stored = self.policies.get(repository)
            if stored is not None:
                found.append(_parsed(stored.document, domain.repository_contents(repository)))
        return found


@functools.lru_cache(maxsize=256)
def _parsed(document: str, covers: tuple[str, ...]) -> Policy:
    """A stored (hence valid) document, parsed once rather than on every request of a build."""
    return parse(document, covers)


def _audit_log(config: Config) -> AuditLog:
    try:
        return AuditLog(config.server.audit_log)
    except OSError as exc:
        reason = f"cannot open {config.server.audit_log} for appending: {exc.strerror or exc}"
        raise ConfigError(config.source, "server.audit_log", reason) from None


AUTHORIZER = web.AppKey("authorizer", Authorizer)
# The Principal the current request was authenticated as: set by the middleware in the request's
# task, so its handler (e.g. GetAuthorizationToken) sees it.
CALLER: ContextVar[Principal | None] = ContextVar("codeartifact_proxy_caller", default=None)
