"""GetAuthorizationToken: a token for the calling principal, for the package clients.

``durationSeconds``: 900 to 43200, default 43200 (12 h). 0 means "the rest of the caller's session";
the proxy's principals sign with static keys, which have no session, so 0 gives the longest token,
12 h, as CodeArtifact does for long-term IAM user credentials.
"""

from __future__ import annotations

from typing import Any

from proxy.api.binding import Call, operation
from proxy.api.errors import not_found, validation
from proxy.auth.authorizer import AUTHORIZER, CALLER, Authorizer
from proxy.auth.tokens import MAX_DURATION, MIN_DURATION


def _services(call: Call) -> Authorizer:
    return call.request.app[AUTHORIZER]


def check_domain(authorizer: Authorizer, params: dict[str, Any]) -> None:
    """The request names the proxy's domain (and its owner, when it names one); else 404."""
    domain = authorizer.principals.domain
    if params["domain"] != domain.name:
        raise not_found("domain", params["domain"], f"domain {params['domain']} does not exist")
    owner = params.get("domainOwner")
    if owner is not None and owner != domain.owner:
        raise not_found("domain", params["domain"], f"domain {params['domain']} of {owner} does not exist")


@operation("GetAuthorizationToken")
async def get_authorization_token(call: Call) -> dict[str, Any]:
    authorizer = _services(call)
    check_domain(authorizer, call.params)
    duration = call.params.get("durationSeconds", MAX_DURATION)
    if duration == 0:
        duration = MAX_DURATION  # static keys have no session to end with
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise validation(f"durationSeconds must be 0 or {MIN_DURATION} to {MAX_DURATION}, not {duration}")
    principal = CALLER.get() or authorizer.anonymous
    token, expires = authorizer.tokens.issue(principal.name, duration)
    return {"authorizationToken": token, "expiration": expires}
