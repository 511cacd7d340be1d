"""Domain operations: DescribeDomain, ListDomains, CreateDomain, DeleteDomain.

The proxy is one CodeArtifact domain, named by ``[domain] name`` (default ``local``) and owned by
``[domain] owner``. It cannot make or remove domains: CreateDomain of that name is a ConflictException
(it exists), of any other name a ServiceQuotaExceededException (one domain per proxy; a second one is
another proxy, or another ``[domain] name``). DeleteDomain is a ConflictException while the domain has
repositories, which it always has (the config file defines at least one, and only the file removes
those). ``[codeartifact.X]`` domains the proxy fronts are answered by CodeArtifact (``proxy.api.fronted``);
ListDomains lists them beside the proxy's own.

``check_domain`` is the check every operation that names a domain makes first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.api.binding import Call, operation
from proxy.api.errors import ApiError, conflict, not_found
from proxy.api.fronted import fronted_summaries
from proxy.api.paging import DEFAULT_PAGE, make_token, open_token
from proxy.api.services import ApiServices, services
from proxy.config.model import DomainConfig

REGION = "local"  # the region part of the ARNs the proxy hands out: it is in no AWS region
ENCRYPTION_KEY = "cache-key"  # what encrypts the domain's assets: the proxy's cache key (its name only)


def domain_config(call: Call) -> DomainConfig:
    return services(call).domain


def check_domain(call: Call) -> DomainConfig:
    """The proxy's domain, if the call names it (and its owner, when given); else ResourceNotFound."""
    domain = domain_config(call)
    name = call.params.get("domain")
    owner = call.params.get("domainOwner")
    if name != domain.name or owner not in (None, domain.owner):
        shown = f"{name} (owner {owner})" if owner else str(name)
        raise not_found(
            "domain", str(name), f"domain {shown} does not exist; this proxy's domain is {domain.name}"
        )
    return domain


def domain_arn(domain: DomainConfig) -> str:
    return f"arn:aws:codeartifact:{REGION}:{domain.owner}:domain/{domain.name}"


def _created_time(api: ApiServices) -> float:
    """The domain is as old as its oldest repository."""
    return min((r.created_time for r in api.repositories.list()), default=0.0)


def _summary(api: ApiServices) -> dict[str, Any]:
    domain = api.domain
    return {
        "name": domain.name,
        "owner": domain.owner,
        "arn": domain_arn(domain),
        "status": "Active",
        "createdTime": _created_time(api),
        "encryptionKey": ENCRYPTION_KEY,
    }


async def _description(api: ApiServices) -> dict[str, Any]:
    size = await asyncio.to_thread(lambda: api.usage.total_size)  # the one-host ledger sums its entries
    return {
        **_summary(api),
        "repositoryCount": len(api.repositories),
        "assetSizeBytes": size,
    }


@operation("DescribeDomain")
async def describe_domain(call: Call) -> dict[str, Any]:
    check_domain(call)
    return {"domain": await _description(services(call))}


@operation("ListDomains")
async def list_domains(call: Call) -> dict[str, Any]:
    """The proxy's own domain and the fronted ones their CodeArtifact lists, by name, ``maxResults`` a
    page; ``nextToken`` holds the last name of the page before (sealed), so the pages stay in order
    however the fronted listings change between them."""
    api = services(call)
    query = {"operation": "ListDomains"}
    after = open_token(api.keyring, query, call.params.get("nextToken"))
    fronted = await fronted_summaries(call.request.app)
    summaries = sorted([_summary(api), *fronted], key=lambda summary: (summary["name"], summary["owner"]))
    if after is not None:
        summaries = [s for s in summaries if [s["name"], s["owner"]] > after]
    size = call.params.get("maxResults", DEFAULT_PAGE)
    page = summaries[:size]
    last = page[-1] if page else None
    token = (
        make_token(api.keyring, query, [last["name"], last["owner"]])
        if last and len(summaries) > size
        else None
    )
    return {"domains": page, "nextToken": token}


@operation("CreateDomain")
async def create_domain(call: Call) -> dict[str, Any]:
    domain = domain_config(call)
    name = call.params["domain"]
    if name == domain.name:
        raise conflict("domain", name, f"domain {name} already exists")
    raise ApiError(
        "ServiceQuotaExceededException",
        f"this proxy serves one domain, {domain.name} ([domain] name in {services(call).source}); "
        f"to serve a domain named {name}, run another proxy or rename that one",
        resourceId=name,
        resourceType="domain",
    )


@operation("DeleteDomain")
async def delete_domain(call: Call) -> dict[str, Any]:
    domain = check_domain(call)
    count = len(services(call).repositories)
    raise conflict(
        "domain",
        domain.name,
        f"domain {domain.name} has {count} repositories; a domain with repositories cannot be deleted",
    )
