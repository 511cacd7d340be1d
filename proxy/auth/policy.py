"""Permissions policy documents (IAM's JSON grammar, as CodeArtifact takes them on a domain or a
repository): parsing with a reason for every refusal, and evaluation as IAM does it for CodeArtifact.

Grammar accepted: ``Version`` ("2012-10-17" or "2008-10-17"), optional ``Id``, ``Statement`` (one
object or a list) of ``Sid``, ``Effect`` (Allow | Deny), ``Principal`` ("*" or {"AWS": ARN | account
id | "*" | a list of those}), ``Action`` (``codeartifact:Operation``, wildcards ``*`` and ``?``, a
string or a list) and ``Resource`` (ARNs with wildcards; optional: the resource the policy is on).
``NotAction``, ``NotPrincipal``, ``NotResource`` and ``Condition`` are refused as not supported,
rather than silently ignored.

Evaluation (``decide``): an explicit Deny in any applicable statement wins; otherwise an Allow from any
of the documents; otherwise deny. Pure functions; documents are immutable.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.api.model import service_model
from proxy.auth.principals import Principal

VERSIONS = ("2012-10-17", "2008-10-17")
MAX_DOCUMENT = 5120  # CodeArtifact's limit on a policy document's length
# Actions with no /v1 operation of their own: the package clients' reads and npm's dist-tag writes.
_DATA_PLANE_ACTIONS = ("ReadFromRepository", "PutPackageMetadata")
_UNSUPPORTED = ("NotAction", "NotPrincipal", "NotResource", "Condition")
_STATEMENT_KEYS = ("Sid", "Effect", "Principal", "Action", "Resource", *_UNSUPPORTED)
_ACCOUNT = re.compile(r"[0-9]{12}")


class PolicyInvalid(ValueError):
    """The document is not a policy this proxy can enforce; the message says where and why."""


@dataclass(frozen=True)
class Statement:
    allow: bool
    principals: tuple[str, ...]  # "*" or ARNs / account ids
    actions: tuple[str, ...]  # lower-case patterns, e.g. "codeartifact:get*"
    resources: tuple[str, ...]  # empty: the resource the policy is attached to


@dataclass(frozen=True)
class Policy:
    """A parsed document; ``covers`` are the ARN patterns a statement without Resource is about (the
    resource the policy is attached to, and for a domain what is in it)."""

    covers: tuple[str, ...]
    statements: tuple[Statement, ...]


@functools.cache
def known_actions() -> frozenset[str]:
    """``codeartifact:Operation`` for every operation of the model, plus the data-plane actions."""
    names = (*service_model().operation_names, *_DATA_PLANE_ACTIONS)
    return frozenset(f"codeartifact:{name}".lower() for name in names)


def parse(document: str, covers: tuple[str, ...]) -> Policy:
    """The policy of ``document``, covering ``covers`` by default; ``PolicyInvalid`` naming what is wrong."""
    if len(document) > MAX_DOCUMENT:
        raise PolicyInvalid(f"the policy document is longer than {MAX_DOCUMENT} characters")
    try:
        doc = json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise PolicyInvalid(f"the policy document is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PolicyInvalid("the policy document must be a JSON object")
    unknown = sorted(set(doc) - {"Version", "Id", "Statement"})
    if unknown:
        raise PolicyInvalid(f"unknown policy element {unknown[0]!r} (known: Version, Id, Statement)")
    if doc.get("Version", VERSIONS[0]) not in VERSIONS:
        raise PolicyInvalid(f"Version must be {VERSIONS[0]!r} (or {VERSIONS[1]!r})")
    raw = doc.get("Statement")
    if raw is None:
        raise PolicyInvalid("the policy has no Statement")
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise PolicyInvalid("Statement must not be empty")
    return Policy(covers, tuple(_statement(i, item) for i, item in enumerate(items)))


def _statement(index: int, item: object) -> Statement:
    where = f"Statement[{index}]"
    if not isinstance(item, dict):
        raise PolicyInvalid(f"{where} must be an object")
    for key in item:
        if key in _UNSUPPORTED:
            raise PolicyInvalid(f"{where}.{key} is not supported by this proxy")
        if key not in _STATEMENT_KEYS:
            raise PolicyInvalid(f"{where} has unknown element {key!r}")
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyInvalid(f'{where}.Effect must be "Allow" or "Deny"')
    if "Action" not in item:
        raise PolicyInvalid(f"{where} has no Action")
    actions = _strings(f"{where}.Action", item["Action"])
    for action in actions:
        _check_action(f"{where}.Action", action)
    if "Principal" not in item:
        raise PolicyInvalid(f"{where} has no Principal (a resource policy names whom it is about)")
    resources = _strings(f"{where}.Resource", item["Resource"]) if "Resource" in item else ()
    for resource in resources:
        if resource != "*" and not resource.startswith("arn:"):
            raise PolicyInvalid(f'{where}.Resource {resource!r} is not an ARN or "*"')
    return Statement(
        allow=effect == "Allow",
        principals=_principals(f"{where}.Principal", item["Principal"]),
        actions=tuple(a.lower() for a in actions),
        resources=resources,
    )


def _strings(where: str, value: object) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyInvalid(f"{where} must be a non-empty string or a list of them")
    return tuple(values)  # type: ignore[arg-type]


def _check_action(where: str, action: str) -> None:
    if action == "*":
        return
    service, _, name = action.partition(":")
    if service.lower() != "codeartifact" or not name:
        raise PolicyInvalid(f"{where} {action!r} is not a codeartifact action (codeartifact:Operation)")
    if not any(fnmatch.fnmatchcase(known, action.lower()) for known in known_actions()):
        raise PolicyInvalid(f"{where} {action!r} matches no CodeArtifact action")


def _principals(where: str, value: object) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if not isinstance(value, dict) or set(value) != {"AWS"}:
        raise PolicyInvalid(f'{where} must be "*" or {{"AWS": ARN or list of ARNs}}')
    principals = _strings(f"{where}.AWS", value["AWS"])
    for principal in principals:
        if (
            principal != "*"
            and not _ACCOUNT.fullmatch(principal)
            and not principal.startswith("arn:aws:iam::")
        ):
            raise PolicyInvalid(f'{where}.AWS {principal!r} is not an IAM ARN, an account id or "*"')
    return principals


def decide(principal: Principal, action: str, resource_arn: str, policies: Iterable[Policy]) -> bool:
    """Whether ``principal`` may do ``action`` (``codeartifact:Operation``) on ``resource_arn``."""
    return evaluate(principal, action, resource_arn, policies) == "allow"


def evaluate(principal: Principal, action: str, resource_arn: str, policies: Iterable[Policy]) -> str:
    """ "deny" (an explicit Deny applies), "allow" (an Allow does, no Deny) or "implicit" (neither)."""
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if not _applies(statement, policy, principal, action, resource_arn):
                continue
            if not statement.allow:
                return "deny"  # an explicit Deny beats every Allow
            allowed = True
    return "allow" if allowed else "implicit"


def _applies(statement: Statement, policy: Policy, principal: Principal, action: str, resource: str) -> bool:
    return (
        any(_principal_matches(p, principal) for p in statement.principals)
        and any(fnmatch.fnmatchcase(action.lower(), a) for a in statement.actions)
        and _resource_matches(statement.resources or policy.covers, resource)
    )


def _principal_matches(pattern: str, principal: Principal) -> bool:
    if principal.anonymous:
        return False  # anonymous rights come from [auth] anonymous, never from a policy
    if pattern == "*":
        return True
    account = principal.arn.split(":")[4]
    return pattern in (principal.arn, account, f"arn:aws:iam::{account}:root")


def _resource_matches(patterns: Iterable[str], resource: str) -> bool:
    """ARN patterns against ``resource``; the region part matches whatever it says."""
    have = resource.split(":", 5)
    for pattern in patterns:
        if pattern == "*":
            return True
        want = pattern.split(":", 5)
        if len(want) == len(have) == 6 and all(
            i == 3 or fnmatch.fnmatchcase(h, w) for i, (h, w) in enumerate(zip(have, want, strict=True))
        ):
            return True
    return False
