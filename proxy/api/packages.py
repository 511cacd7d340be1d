"""/v1 packages of a repository: ListPackages, DescribePackage, PutPackageOriginConfiguration,
DeletePackage; and the helpers every package and package-version handler shares (the domain and
repository checks, a package's coordinate in the format's terms, telling the formats a package changed).

The proxy is one domain (``[domain] name``, default ``local``); its repositories are the config's.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

from proxy.api.binding import Call, operation
from proxy.api.errors import not_found, validation
from proxy.api.paging import DEFAULT_PAGE, make_token, open_token
from proxy.daemon import Daemon
from proxy.formats.maven import details as maven_details
from proxy.formats.maven.routes import MAVEN
from proxy.formats.npm import details as npm_details
from proxy.formats.npm.routes import NPM
from proxy.formats.pypi import details as pypi_details
from proxy.formats.pypi.routes import PYPI
from proxy.server.context import DAEMON
from proxy.store.catalog import ListingCursor, OriginConfiguration, PackageCoordinate, PackageRecord

DEFAULT_DOMAIN = "local"
DEFAULT_OWNER = "000000000000"
FORMATS: dict[str, types.ModuleType] = {"npm": npm_details, "pypi": pypi_details, "maven": maven_details}


def services(call: Call) -> Daemon:
    """The daemon's services, for a handler (the one place handlers reach them)."""
    return call.request.app[DAEMON]


def domain_of(daemon: Daemon) -> tuple[str, str]:
    """(name, owner) of the proxy's domain; ``[domain]`` is read defensively until the config has it."""
    domain = getattr(daemon.config, "domain", None)
    return getattr(domain, "name", DEFAULT_DOMAIN), getattr(domain, "owner", DEFAULT_OWNER)


def check_repository(call: Call, repository: str) -> Daemon:
    """The daemon, once the call's domain (and owner) and ``repository`` exist; else a 404."""
    daemon = services(call)
    name, owner = domain_of(daemon)
    if call.params["domain"] != name or call.params.get("domainOwner", owner) != owner:
        raise not_found("domain", call.params["domain"])
    if repository not in daemon.config.repositories:
        raise not_found("repository", repository, f"repository {repository} does not exist in domain {name}")
    return daemon


def format_module(format: str) -> types.ModuleType:
    module = FORMATS.get(format)
    if module is None:
        raise validation(f"format {format} is not served by this proxy (only {', '.join(FORMATS)})")
    return module


def coordinate_of(call: Call) -> PackageCoordinate:
    """The catalog coordinate of the call's format, namespace and package."""
    params = call.params
    return format_module(params["format"]).coordinate(params.get("namespace"), params["package"])


def package_id(coordinate: PackageCoordinate) -> str:
    return format_module(coordinate.format).display_name(coordinate)


def find_package(
    call: Call, repository: str | None = None
) -> tuple[Daemon, PackageCoordinate, PackageRecord]:
    """The package the call names, in ``repository`` (default: the call's); a 404 when it is not there."""
    repository = repository or call.params["repository"]
    daemon = check_repository(call, repository)
    coordinate = coordinate_of(call)
    record = daemon.store.catalog.package(repository, coordinate)
    if record is None:
        raise not_found(
            "package",
            package_id(coordinate),
            f"package {package_id(coordinate)} is not in repository {repository}",
        )
    return daemon, coordinate, record


def package_changed(call: Call, coordinate: PackageCoordinate) -> None:
    """Tell the formats' in-memory views that a package's versions or statuses changed."""
    app = call.request.app
    for key in (NPM, PYPI, MAVEN):
        if key in app:
            app[key].package_changed(coordinate)


async def release_blobs(daemon: Daemon, blob_ids: set[str]) -> None:
    """Remove from the store the blobs no package version of any repository references any more.

    Runs after the catalog change that dropped the references; the scan of every record is what makes
    "unless another version or repository still references the blob" hold. A publish of the same bytes
    racing this could dedup onto a blob that is then removed: `verify` reports such a version."""
    if not blob_ids:
        return
    store = daemon.store

    def release() -> None:
        referenced = store.referenced_blobs()
        for blob_id in blob_ids - referenced:
            store.blobs.delete(blob_id)
            store.ledger.forget(blob_id)

    await asyncio.to_thread(release)


async def committed(daemon: Daemon) -> None:
    """A /v1 change is acknowledged only once it survives a power failure."""
    await asyncio.to_thread(daemon.store.sync)


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
    daemon = check_repository(call, repository)
    catalog = daemon.store.catalog
    fmt, prefix = params.get("format"), params.get("packagePrefix", "")
    namespace = params.get("namespace")
    if namespace is not None and fmt == "npm":
        namespace = namespace.removeprefix("@")
    restrictions = {k: params[k] for k in ("publish", "upstream") if k in params}
    records: dict[PackageCoordinate, PackageRecord] = {}

    def keep(coordinate: PackageCoordinate) -> bool:
        if fmt is not None and coordinate.format != fmt:
            return False
        if namespace is not None and coordinate.namespace != namespace:
            return False
        if not coordinate.name.startswith(prefix):
            return False
        record = catalog.package(repository, coordinate)
        if record is None:
            return False
        config = record.origin_configuration
        if any(getattr(config, k) != v for k, v in restrictions.items()):
            return False
        records[coordinate] = record
        return True

    query = {"op": call.operation, "repository": repository, "format": fmt, "namespace": namespace}
    query |= {"prefix": prefix, **restrictions}
    position = open_token(daemon.store.keyring, query, params.get("nextToken"))
    cursor = ListingCursor(position[0], tuple(position[1]) if position[1] else None) if position else None
    page, following = catalog.package_page(repository, cursor, params.get("maxResults", DEFAULT_PAGE), keep)
    token = make_token(daemon.store.keyring, query, [following.shard, following.after]) if following else None
    return {
        "packages": [summary(c, records[c].origin_configuration) for c in page],
        "nextToken": token,
    }


@operation("DescribePackage")
async def describe_package(call: Call) -> dict[str, Any]:
    _, coordinate, record = find_package(call)
    described = summary(coordinate, record.origin_configuration)
    described["name"] = described.pop("package")
    return {"package": described}


@operation("PutPackageOriginConfiguration")
async def put_package_origin_configuration(call: Call) -> dict[str, Any]:
    repository = call.params["repository"]
    daemon = check_repository(call, repository)
    coordinate = coordinate_of(call)
    wanted = call.params["restrictions"]
    config = OriginConfiguration(publish=wanted["publish"], upstream=wanted["upstream"])

    def change(record: PackageRecord) -> None:
        record.origin_configuration = config

    # CodeArtifact lets origin controls be set before the package exists (to block a name upstream).
    daemon.store.catalog.update_package(repository, coordinate, change, commit=True)
    await committed(daemon)
    package_changed(call, coordinate)
    return {"originConfiguration": origin_configuration(config)}


@operation("DeletePackage")
async def delete_package(call: Call) -> dict[str, Any]:
    repository = call.params["repository"]
    daemon, coordinate, record = find_package(call)
    blobs = {a.blob_id for pv in record.versions.values() for a in pv.assets.values()}
    daemon.store.catalog.delete_package(repository, coordinate)
    daemon.store.catalog.index.commit()
    await committed(daemon)
    await release_blobs(daemon, blobs)
    package_changed(call, coordinate)
    return {"deletedPackage": summary(coordinate, record.origin_configuration)}
