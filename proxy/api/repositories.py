"""Repository operations: Create/Describe/Update/DeleteRepository, ListRepositories(InDomain),
Associate/DisassociateExternalConnection and GetRepositoryEndpoint, over the repository registry.

A repository's upstream list (``proxy.repository.registry``) holds, in resolution order, other
repositories of the domain and ``[upstream.X]`` tables of the config file. CodeArtifact's shapes tell
them apart: an ``[upstream.X]`` with ``external_connection = "public:..."`` is reported as that
external connection, everything else as an upstream repository by its name. An external connection is
associated at the end of the list; UpdateRepository's ``upstreams`` replaces the repositories and keeps
the external connection last.

A repository created here accepts publishes (as every CodeArtifact repository does). Deleting one
removes its packages from the catalog, as CodeArtifact does; the blobs go with the next ``gc``.
Repositories the config file defines are described like the others, and refused for changes with a
message naming the file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from proxy.api.binding import Call, operation
from proxy.api.domains import REGION, check_domain, domain_config
from proxy.api.errors import ApiError, conflict, not_found, validation
from proxy.api.services import services
from proxy.config.model import DomainConfig, RegistryUpstream
from proxy.formats.common.http import base_url
from proxy.formats.registry import format_names
from proxy.repository.registry import (
    ConfigDefined,
    InUse,
    InvalidUpstreams,
    RegistryError,
    RegistryUnavailable,
    RepositoryExists,
    RepositoryNotFound,
    RepositoryRegistry,
)
from proxy.store.protocols import CatalogService
from proxy.store.repositories import RepositoryRecord

PAGE_SIZE = 100  # maxResults when not given (CodeArtifact's default and limit)
# Held while a repository's packages are removed, so a repository of that name created meanwhile is not
# emptied under its first publishes.
_PACKAGE_REMOVAL = asyncio.Lock()


def _registry(call: Call) -> RepositoryRegistry:
    return services(call).repositories


def _external_connections(call: Call) -> dict[str, RegistryUpstream]:
    """``[upstream.X]`` tables that declare an external connection, by upstream name."""
    upstreams = services(call).upstreams.values()
    return {u.name: u for u in upstreams if isinstance(u, RegistryUpstream) and u.external_connection}


def _arn(domain: DomainConfig, repository: str) -> str:
    return f"arn:aws:codeartifact:{REGION}:{domain.owner}:repository/{domain.name}/{repository}"


def _summary(call: Call, record: RepositoryRecord) -> dict[str, Any]:
    domain = domain_config(call)
    description = record.description
    if record.config_defined:
        source = services(call).source
        description = f"defined by the configuration file {source} ([repository.{record.name}])"
    return {
        "name": record.name,
        "administratorAccount": domain.owner,
        "domainName": domain.name,
        "domainOwner": domain.owner,
        "arn": _arn(domain, record.name),
        "description": description or None,
        "createdTime": record.created_time,
    }


def _description(call: Call, record: RepositoryRecord) -> dict[str, Any]:
    external = _external_connections(call)
    return {
        **_summary(call, record),
        "upstreams": [{"repositoryName": name} for name in record.upstreams if name not in external],
        "externalConnections": [
            {
                "externalConnectionName": external[name].external_connection,
                "packageFormat": external[name].format,
                "status": "Available",
            }
            for name in record.upstreams
            if name in external
        ],
    }


def _refusal(exc: RegistryError) -> ApiError:
    """The API's error for what the registry refused."""
    if isinstance(exc, RepositoryNotFound):
        return not_found("repository", exc.name)
    if isinstance(exc, RepositoryExists):
        return conflict("repository", exc.name, str(exc))
    if isinstance(exc, ConfigDefined):
        return ApiError("AccessDeniedException", str(exc))
    if isinstance(exc, InUse):
        return conflict("repository", exc.name, str(exc))
    if isinstance(exc, InvalidUpstreams):
        return validation(str(exc))
    if isinstance(exc, RegistryUnavailable):
        return ApiError("InternalServerException", str(exc))
    return validation(str(exc), "OTHER")


def _record(call: Call) -> RepositoryRecord:
    check_domain(call)
    name = call.params["repository"]
    record = _registry(call).get(name)
    if record is None:
        raise not_found("repository", name)
    return record


async def _changed(
    call: Call, name: str, description: str | None = None, upstreams: list[str] | None = None
) -> dict[str, Any]:
    """Update the repository in the registry; the output of the operations that change one."""
    try:
        record = await _registry(call).update(name, description, upstreams)
    except RegistryError as exc:
        raise _refusal(exc) from None
    return {"repository": _description(call, record)}


def _upstream_names(call: Call) -> list[str] | None:
    given = call.params.get("upstreams")
    return None if given is None else [item["repositoryName"] for item in given]


async def _drop_packages(catalog: CatalogService, repository: str) -> None:
    """Remove the repository's packages and package versions from the catalog (their blobs stay until
    ``gc`` finds nothing refers to them)."""
    for coordinate in await catalog.packages(repository):
        await catalog.delete_package(repository, coordinate)
    await catalog.sync()


@operation("CreateRepository")
async def create_repository(call: Call) -> dict[str, Any]:
    check_domain(call)
    name = call.params["repository"]
    async with _PACKAGE_REMOVAL:
        if name not in _registry(call):
            # A repository deleted before starts empty, even if its packages' removal was cut short.
            await _drop_packages(services(call).catalog, name)
        try:
            record = await _registry(call).create(
                name, call.params.get("description", ""), _upstream_names(call) or ()
            )
        except RegistryError as exc:
            raise _refusal(exc) from None
    return {"repository": _description(call, record)}


@operation("DescribeRepository")
async def describe_repository(call: Call) -> dict[str, Any]:
    return {"repository": _description(call, _record(call))}


@operation("UpdateRepository")
async def update_repository(call: Call) -> dict[str, Any]:
    record = _record(call)
    upstreams = _upstream_names(call)
    if upstreams is not None:
        external = _external_connections(call)
        if any(name in external for name in upstreams):
            raise validation(
                "an external connection is not an upstream repository: use AssociateExternalConnection"
            )
        upstreams += [name for name in record.upstreams if name in external]  # kept last
    return await _changed(call, record.name, call.params.get("description"), upstreams)


@operation("DeleteRepository")
async def delete_repository(call: Call) -> dict[str, Any]:
    record = _record(call)
    description = _description(call, record)
    async with _PACKAGE_REMOVAL:
        try:
            await _registry(call).delete(record.name)
        except RegistryError as exc:
            raise _refusal(exc) from None
        await _drop_packages(services(call).catalog, record.name)
    return {"repository": description}


@operation("AssociateExternalConnection")
async def associate_external_connection(call: Call) -> dict[str, Any]:
    record = _record(call)
    wanted = call.params["externalConnection"]
    external = _external_connections(call)
    upstream = next((u for u in external.values() if u.external_connection == wanted), None)
    if upstream is None:
        raise validation(
            f"external connection {wanted} is not available: no [upstream.X] table in "
            f'{services(call).source} has external_connection = "{wanted}"',
            "INVALID_PARAMETER_VALUE",
        )
    if any(name in external for name in record.upstreams):
        raise conflict(
            "repository", record.name, f"repository {record.name} already has an external connection"
        )
    return await _changed(call, record.name, upstreams=[*record.upstreams, upstream.name])


@operation("DisassociateExternalConnection")
async def disassociate_external_connection(call: Call) -> dict[str, Any]:
    record = _record(call)
    wanted = call.params["externalConnection"]
    external = _external_connections(call)
    names = [n for n in record.upstreams if n in external and external[n].external_connection == wanted]
    if not names:
        raise not_found(
            "repository", record.name, f"repository {record.name} has no external connection {wanted}"
        )
    return await _changed(call, record.name, upstreams=[n for n in record.upstreams if n not in names])


@operation("GetRepositoryEndpoint")
async def get_repository_endpoint(call: Call) -> dict[str, Any]:
    record = _record(call)
    format_ = call.params["format"]
    served = format_names()  # a format's name is its data plane's URL prefix
    if format_ not in served:
        raise validation(
            f"this proxy serves {', '.join(served)} repositories, not {format_}", "INVALID_PARAMETER_VALUE"
        )
    base = base_url(call.request, services(call).public_url)
    return {"repositoryEndpoint": f"{base}{format_}/{record.name}/"}


# -- listings -------------------------------------------------------------------------------------
def _page(call: Call, records: list[RepositoryRecord]) -> dict[str, Any]:
    """One page of ``records`` (sorted by name) after ``nextToken``, at most ``maxResults`` long."""
    prefix = call.params.get("repositoryPrefix", "")
    owner = call.params.get("administratorAccount")
    if owner is not None and owner != domain_config(call).owner:
        records = []
    matching = [r for r in records if r.name.startswith(prefix)]
    after = _after(call.params.get("nextToken"))
    if after is not None:
        matching = [r for r in matching if r.name > after]
    size = call.params.get("maxResults", PAGE_SIZE)
    page = matching[:size]
    token = _token(page[-1].name) if len(matching) > size else None
    return {"repositories": [_summary(call, r) for r in page], "nextToken": token}


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(f"after:{last}".encode()).decode()


def _after(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("after:"):
        raise validation("nextToken is not a token this proxy handed out", "OTHER")
    return text.removeprefix("after:")


@operation("ListRepositories")
async def list_repositories(call: Call) -> dict[str, Any]:
    return _page(call, _registry(call).list())


@operation("ListRepositoriesInDomain")
async def list_repositories_in_domain(call: Call) -> dict[str, Any]:
    check_domain(call)
    return _page(call, _registry(call).list())
