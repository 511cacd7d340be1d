"""/v1 packages of a repository: ListPackages, DescribePackage, PutPackageOriginConfiguration,
DeletePackage; and the helpers every package and package-version handler shares (the domain and
repository checks, a package's coordinate in the format's terms, telling the formats a package changed).

The proxy is one domain (``[domain] name``); its repositories are the registry's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.api.binding import Call, operation
from proxy.api.domains import check_domain
from proxy.api.errors import not_found, validation
from proxy.api.paging import DEFAULT_PAGE, make_token, open_token
from proxy.api.services import ApiServices, services
from proxy.formats.format import Format
from proxy.formats.registry import FORMATS
from proxy.store.protocols import (
    CatalogService,
    ListingCursor,
    OriginConfiguration,
    PackageCoordinate,
    PackageRecord,
)


def check_repository(call: Call, repository: str) -> ApiServices:
    """The API's services, once the call's domain (and owner) and ``repository`` exist; else a 404."""
    domain = check_domain(call)
    api = services(call)
    if repository not in api.repositories:
        raise not_found(
            "repository", repository, f"repository {repository} does not exist in domain {domain.name}"
        )
    return api


def format_of(name: str) -> Format:
    """The registered format called ``name``; a ValidationException when the proxy serves none."""
    for served in FORMATS:
        if served.name == name:
            return served
    names = ", ".join(f.name for f in FORMATS)
    raise validation(f"format {name} is not served by this proxy (only {names})")


def coordinate_of(call: Call) -> PackageCoordinate:
    """The catalog coordinate of the call's format, namespace and package."""
    params = call.params
    return format_of(params["format"]).coordinate(params.get("namespace"), params["package"])


def package_id(coordinate: PackageCoordinate) -> str:
    return format_of(coordinate.format).display_name(coordinate)


async def find_package(
    call: Call, repository: str | None = None
) -> tuple[ApiServices, PackageCoordinate, PackageRecord]:
    """The package the call names, in ``repository`` (default: the call's); a 404 when it is not there."""
    repository = repository or call.params["repository"]
    api = check_repository(call, repository)
    coordinate = coordinate_of(call)
    record = await api.catalog.package(repository, coordinate)
    if record is None:
        raise not_found(
            "package",
            package_id(coordinate),
            f"package {package_id(coordinate)} is not in repository {repository}",
        )
    return api, coordinate, record


async def committed(api: ApiServices, coordinate: PackageCoordinate) -> None:
    """A /v1 change is acknowledged only once it survives a power failure; then the package's merged
    views and asset locations are dropped, so clients see the change at once."""
    await api.catalog.sync()
    api.invalidate(coordinate)


def origin_configuration(config: OriginConfiguration) -> dict[str, Any]:
    return {"restrictions": {"publish": config.publish, "upstream": config.upstream}}


def summary(coordinate: PackageCoordinate, config: OriginConfiguration) -> dict[str, Any]:
    return {
        "format": coordinate.format,
        "namespace": coordinate.namespace or None,
        "package": coordinate.name,
        "originConfiguration": origin_configuration(config),
    }


# -- operations -----------------------------------------------------------------------------------
@operation("ListPackages")
async def list_packages(call: Call) -> dict[str, Any]:
    params = call.params
    repository = params["repository"]
    api = check_repository(call, repository)
    fmt, prefix = params.get("format"), params.get("packagePrefix", "")
    namespace = params.get("namespace")
    if namespace is not None and fmt is not None:
        # As the catalog keeps it (npm: the scope without its '@'); a format without namespaces keeps
        # the given one, which then matches nothing.
        namespace = format_of(fmt).coordinate(namespace, "-").namespace or namespace
    restrictions = {k: params[k] for k in ("publish", "upstream") if k in params}

    def keep(coordinate: PackageCoordinate) -> bool:
        if fmt is not None and coordinate.format != fmt:
            return False
        if namespace is not None and coordinate.namespace != namespace:
            return False
        return coordinate.name.startswith(prefix)

    def restricted(record: PackageRecord) -> bool:
        config = record.origin_configuration
        return any(getattr(config, k) != v for k, v in restrictions.items())

    query = {"op": call.operation, "repository": repository, "format": fmt, "namespace": namespace}
    query |= {"prefix": prefix, **restrictions}
    position = open_token(api.keyring, query, params.get("nextToken"))
    cursor = ListingCursor(position[0], tuple(position[1]) if position[1] else None) if position else None
    limit = params.get("maxResults", DEFAULT_PAGE)
    page, following = await _package_page(api.catalog, repository, cursor, limit, keep, restricted)
    token = make_token(api.keyring, query, [following.shard, following.after]) if following else None
    return {
        "packages": [summary(c, record.origin_configuration) for c, record in page],
        "nextToken": token,
    }


async def _package_page(
    catalog: CatalogService,
    repository: str,
    cursor: ListingCursor | None,
    limit: int,
    keep: Callable[[PackageCoordinate], bool],
    restricted: Callable[[PackageRecord], bool],
) -> tuple[list[tuple[PackageCoordinate, PackageRecord]], ListingCursor | None]:
    """Up to ``limit`` packages that ``keep`` accepts by name and ``restricted`` does not refuse by
    record, and the cursor after the last one looked at (None: no more). ``keep`` filters inside the
    catalog's shard walk; records are read only for the names kept."""
    page: list[tuple[PackageCoordinate, PackageRecord]] = []
    while True:
        coordinates, cursor = await catalog.package_page(repository, cursor, limit - len(page), keep)
        for coordinate in coordinates:
            record = await catalog.package(repository, coordinate)
            if record is not None and not restricted(record):
                page.append((coordinate, record))
        if cursor is None or len(page) == limit:
            return page, cursor


@operation("DescribePackage")
async def describe_package(call: Call) -> dict[str, Any]:
    _, coordinate, record = await find_package(call)
    described = summary(coordinate, record.origin_configuration)
    described["name"] = described.pop("package")
    return {"package": described}


@operation("PutPackageOriginConfiguration")
async def put_package_origin_configuration(call: Call) -> dict[str, Any]:
    repository = call.params["repository"]
    api = check_repository(call, repository)
    coordinate = coordinate_of(call)
    wanted = call.params["restrictions"]
    config = OriginConfiguration(publish=wanted["publish"], upstream=wanted["upstream"])

    def change(record: PackageRecord) -> None:
        record.origin_configuration = config

    # CodeArtifact lets origin controls be set before the package exists (to block a name upstream).
    await api.catalog.update_package(repository, coordinate, change, commit=True)
    await committed(api, coordinate)
    return {"originConfiguration": origin_configuration(config)}


@operation("DeletePackage")
async def delete_package(call: Call) -> dict[str, Any]:
    repository = call.params["repository"]
    api, coordinate, record = await find_package(call)
    blobs = {a.blob_id for pv in record.versions.values() for a in pv.assets.values()}
    await api.catalog.delete_package(repository, coordinate)
    await committed(api, coordinate)
    await api.blobs.discard_unreferenced(blobs)
    return {"deletedPackage": summary(coordinate, record.origin_configuration)}
