"""/v1 package versions: listing and describing them, their assets, readme and dependencies, and the
changes CodeArtifact allows (copy between repositories, delete, dispose, status updates).

A package's versions live in one catalog record: listing pages through it in memory. Changes to a
package are one read-modify-write of that record (``Catalog.update_package``), so per-version results
are decided against the record as it is when written. What a status means to clients is
``proxy.repository.status``; blobs nothing references any more are removed by
``BlobService.discard_unreferenced``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from proxy.api.binding import Call, operation
from proxy.api.errors import not_found, validation
from proxy.api.packages import (
    check_repository,
    committed,
    coordinate_of,
    find_package,
    format_of,
    package_id,
)
from proxy.api.paging import DEFAULT_PAGE, make_token, open_token
from proxy.api.services import ApiServices
from proxy.repository.details import Dependency, VersionDetails, version_order
from proxy.repository.origin import PUBLISHED_DEFAULT
from proxy.repository.status import SETTABLE, fetchable
from proxy.store.protocols import (
    AssetRecord,
    BlobError,
    BlobService,
    PackageCoordinate,
    PackageRecord,
    PackageVersionRecord,
)

Results = tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]
# Changes one version of the record and returns None, or returns why the version was not changed.
Decide = Callable[[PackageRecord, str, PackageVersionRecord], dict[str, str] | None]


def revision(version: PackageVersionRecord) -> str:
    """A version's revision: changes exactly when its set of assets changes."""
    digest = hashlib.sha256()
    for name, asset in sorted(version.assets.items()):
        digest.update(f"{name}\0{asset.blob_id}\0".encode())
    return base64.urlsafe_b64encode(digest.digest()[:24]).decode()


def origin(version: PackageVersionRecord) -> dict[str, Any]:
    if version.origin.origin_type == "INTERNAL":
        entry = {"repositoryName": version.origin.entry_point}
    else:
        entry = {"externalConnectionName": version.origin.entry_point}
    return {"domainEntryPoint": entry, "originType": version.origin.origin_type}


async def _find_version(
    call: Call,
) -> tuple[ApiServices, PackageCoordinate, PackageRecord, PackageVersionRecord]:
    api, coordinate, record = await find_package(call)
    wanted = call.params["packageVersion"]
    version = record.versions.get(wanted)
    if version is None:
        raise not_found(
            "package-version",
            wanted,
            f"package {package_id(coordinate)} has no version {wanted} in {call.params['repository']}",
        )
    return api, coordinate, record, version


def _reader(blobs: BlobService) -> Callable[[AssetRecord], Any]:
    async def read(asset: AssetRecord) -> bytes:
        try:
            return b"".join([chunk async for chunk in blobs.read(asset.blob_id)])
        except BlobError as exc:
            raise LookupError(str(exc)) from None

    return read


async def _details(
    api: ApiServices, coordinate: PackageCoordinate, version: PackageVersionRecord
) -> VersionDetails:
    try:
        return await format_of(coordinate.format).version_details(coordinate, version, _reader(api.blobs))
    except LookupError:
        return VersionDetails(package_id(coordinate))  # its assets are gone (disposed, evicted)


def _heading(coordinate: PackageCoordinate, version: PackageVersionRecord | None = None) -> dict[str, Any]:
    head: dict[str, Any] = {
        "format": coordinate.format,
        "namespace": coordinate.namespace or None,
        "package": coordinate.name,
    }
    if version is not None:
        head |= {"version": version.version, "versionRevision": revision(version)}
    return head


# -- reading --------------------------------------------------------------------------------------
@operation("ListPackageVersions")
async def list_package_versions(call: Call) -> dict[str, Any]:
    params = call.params
    api, coordinate, record = await find_package(call)
    versions = [
        pv
        for pv in record.versions.values()
        if params.get("status", pv.status) == pv.status
        and params.get("originType", pv.origin.origin_type) == pv.origin.origin_type
    ]
    if params.get("sortBy") == "PUBLISHED_TIME":
        versions.sort(key=lambda pv: (pv.published_time, version_order(pv.version)), reverse=True)
    else:
        versions.sort(key=lambda pv: version_order(pv.version))
    query = {k: params.get(k) for k in ("repository", "format", "namespace", "package", "status", "sortBy")}
    query |= {"op": call.operation, "originType": params.get("originType")}
    start = open_token(api.keyring, query, params.get("nextToken")) or 0
    end = start + params.get("maxResults", DEFAULT_PAGE)
    listed = [pv for pv in record.versions.values() if pv.status == "Published"]
    default = record.dist_tags.get("latest")
    if default not in record.versions and listed:
        default = max(listed, key=lambda pv: version_order(pv.version)).version
    return {
        **_heading(coordinate),
        "defaultDisplayVersion": default,
        "versions": [
            {"version": pv.version, "revision": revision(pv), "status": pv.status, "origin": origin(pv)}
            for pv in versions[start:end]
        ],
        "nextToken": make_token(api.keyring, query, end) if end < len(versions) else None,
    }


@operation("DescribePackageVersion")
async def describe_package_version(call: Call) -> dict[str, Any]:
    api, coordinate, _, version = await _find_version(call)
    details = await _details(api, coordinate, version)
    return {
        "packageVersion": {
            "format": coordinate.format,
            "namespace": coordinate.namespace or None,
            "packageName": coordinate.name,
            "displayName": details.display_name[:255],
            "version": version.version,
            "summary": details.summary,
            "homePage": details.home_page,
            "sourceCodeRepository": details.source_code_repository,
            "publishedTime": version.published_time,
            "licenses": [{"name": item.name, "url": item.url} for item in details.licenses],
            "revision": revision(version),
            "status": version.status,
            "origin": origin(version),
        }
    }


@operation("ListPackageVersionAssets")
async def list_package_version_assets(call: Call) -> dict[str, Any]:
    params = call.params
    api, coordinate, _, version = await _find_version(call)
    assets = sorted(version.assets.values(), key=lambda a: a.name)
    query = {k: params.get(k) for k in ("repository", "format", "namespace", "package", "packageVersion")}
    query["op"] = call.operation
    start = open_token(api.keyring, query, params.get("nextToken")) or 0
    end = start + params.get("maxResults", DEFAULT_PAGE)
    return {
        **_heading(coordinate, version),
        "assets": [{"name": a.name, "size": a.size, "hashes": a.hashes} for a in assets[start:end]],
        "nextToken": make_token(api.keyring, query, end) if end < len(assets) else None,
    }


@operation("GetPackageVersionAsset")
async def get_package_version_asset(call: Call) -> web.StreamResponse:
    api, coordinate, _, version = await _find_version(call)
    name = call.params["asset"]
    asset = version.assets.get(name)
    if asset is None or not fetchable(version):
        raise not_found("asset", name, f"{package_id(coordinate)} {version.version} has no asset {name}")
    wanted = call.params.get("packageVersionRevision")
    if wanted is not None and wanted != revision(version):
        raise not_found("package-version", version.version, f"revision {wanted} is not the current one")
    chunks = api.blobs.read(asset.blob_id)
    try:
        first = await anext(chunks, b"")
    except BlobError:
        raise not_found("asset", name, f"asset {name} is no longer in the store") from None
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "X-AssetName": name,
            "X-PackageVersion": version.version,
            "X-PackageVersionRevision": revision(version),
        }
    )
    response.content_length = asset.size
    await response.prepare(call.request)
    await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


@operation("GetPackageVersionReadme")
async def get_package_version_readme(call: Call) -> dict[str, Any]:
    api, coordinate, _, version = await _find_version(call)
    details = await _details(api, coordinate, version)
    return {**_heading(coordinate, version), "readme": details.readme}


@operation("ListPackageVersionDependencies")
async def list_package_version_dependencies(call: Call) -> dict[str, Any]:
    api, coordinate, _, version = await _find_version(call)
    details = await _details(api, coordinate, version)
    return {**_heading(coordinate, version), "dependencies": [_dependency(d) for d in details.dependencies]}


def _dependency(dependency: Dependency) -> dict[str, Any]:
    return {
        "namespace": dependency.namespace,
        "package": dependency.package,
        "dependencyType": dependency.dependency_type,
        "versionRequirement": dependency.version_requirement,
    }


# -- changes --------------------------------------------------------------------------------------
def _wanted(call: Call) -> dict[str, str | None]:
    """The versions a change names, with the revision each must have (None: any)."""
    versions = call.params.get("versions") or []
    revisions = call.params.get("versionRevisions") or {}
    if versions and revisions and call.operation == "CopyPackageVersions":
        raise validation("give versions or versionRevisions, not both")
    if not versions and not revisions:
        raise validation("versions (or versionRevisions) is required")
    return {**dict.fromkeys(versions), **revisions}


def _check(
    pv: PackageVersionRecord | None, version: str, want_revision: str | None, expected: str | None
) -> dict[str, str] | None:
    """The failure of one version of a change, or None when it may go ahead."""
    if pv is None:
        return _failure("NOT_FOUND", f"version {version} does not exist")
    if want_revision is not None and want_revision != revision(pv):
        return _failure("MISMATCHED_REVISION", f"version {version} is at revision {revision(pv)}")
    if expected is not None and pv.status != expected:
        return _failure("MISMATCHED_STATUS", f"version {version} is {pv.status}, not {expected}")
    return None


def _failure(code: str, message: str) -> dict[str, str]:
    return {"errorCode": code, "errorMessage": message}


async def _change_versions(call: Call, decide: Decide) -> tuple[ApiServices, Results, set[str]]:
    """Apply ``decide`` to each named version that passes the checks, in one write of the record.
    ``decide`` changes the record and returns None, or returns the version's failure. Returns the
    results and the blob ids of the assets the change dropped."""
    repository = call.params["repository"]
    api, coordinate, _ = await find_package(call)
    wanted, expected = _wanted(call), call.params.get("expectedStatus")
    done: dict[str, dict[str, str]] = {}
    failed: dict[str, dict[str, str]] = {}
    dropped: set[str] = set()

    def change(record: PackageRecord) -> None:
        for version, want_revision in wanted.items():
            pv = record.versions.get(version)
            before = {a.blob_id for a in pv.assets.values()} if pv else set()
            problem = _check(pv, version, want_revision, expected)
            if problem is None:
                assert pv is not None
                problem = decide(record, version, pv)
            if problem is not None:
                failed[version] = problem
                continue
            after = record.versions.get(version)
            dropped.update(before - ({a.blob_id for a in after.assets.values()} if after else set()))
            done[version] = {
                "revision": revision(after or pv),
                "status": after.status if after else "Deleted",
            }

    await api.catalog.update_package(repository, coordinate, change, commit=True)
    await committed(api, coordinate)
    return api, (done, failed), dropped


def _results(results: Results) -> dict[str, Any]:
    return {"successfulVersions": results[0], "failedVersions": results[1]}


async def _remove(call: Call, decide: Decide) -> dict[str, Any]:
    """A change that drops assets: their blobs leave the store unless still referenced."""
    api, results, dropped = await _change_versions(call, decide)
    await api.blobs.discard_unreferenced(dropped)
    return _results(results)


@operation("DeletePackageVersions")
async def delete_package_versions(call: Call) -> dict[str, Any]:
    def delete(record: PackageRecord, version: str, pv: PackageVersionRecord) -> dict[str, str] | None:
        del record.versions[version]
        for tag in [t for t, v in record.dist_tags.items() if v == version]:
            del record.dist_tags[tag]
        return None

    return await _remove(call, delete)


@operation("DisposePackageVersions")
async def dispose_package_versions(call: Call) -> dict[str, Any]:
    def dispose(record: PackageRecord, version: str, pv: PackageVersionRecord) -> dict[str, str] | None:
        pv.status = "Disposed"
        pv.assets = {}
        return None

    return await _remove(call, dispose)


@operation("UpdatePackageVersionsStatus")
async def update_package_versions_status(call: Call) -> dict[str, Any]:
    target = call.params["targetStatus"]
    if target not in SETTABLE:
        raise validation(f"targetStatus must be one of {', '.join(sorted(SETTABLE))}, not {target}")

    def update(record: PackageRecord, version: str, pv: PackageVersionRecord) -> dict[str, str] | None:
        if pv.status == "Disposed":
            return _failure("NOT_ALLOWED", f"version {version} is disposed: its assets are gone")
        pv.status = target
        return None

    _, results, _ = await _change_versions(call, update)
    return _results(results)


@operation("CopyPackageVersions")
async def copy_package_versions(call: Call) -> dict[str, Any]:
    params = call.params
    source, destination = params["sourceRepository"], params["destinationRepository"]
    if source == destination:
        raise validation("sourceRepository and destinationRepository must differ")
    check_repository(call, destination)
    api, coordinate, found = await _copy_sources(call, source, params.get("includeFromUpstream", False))
    wanted, overwrite = _wanted(call), params.get("allowOverwrite", False)
    done: dict[str, dict[str, str]] = {}
    failed: dict[str, dict[str, str]] = {}

    def copy(record: PackageRecord) -> None:
        if not record.versions:
            record.origin_configuration = PUBLISHED_DEFAULT
        elif record.origin_configuration.publish == "BLOCK":
            blocked = _failure(
                "NOT_ALLOWED", f"package {package_id(coordinate)} blocks publishing in {destination}"
            )
            failed.update(dict.fromkeys(wanted, blocked))
            return
        for version, want_revision in wanted.items():
            pv = found.get(version)
            problem = _check(pv, version, want_revision, None)
            if problem is None and pv is not None and not pv.assets:
                problem = _failure("NOT_ALLOWED", f"version {version} is {pv.status} and has no assets")
            if problem is None and version in record.versions and not overwrite:
                problem = _failure("ALREADY_EXISTS", f"version {version} exists in repository {destination}")
            if problem is not None:
                failed[version] = problem
                continue
            assert pv is not None
            record.versions[version] = PackageVersionRecord(
                pv.version, pv.origin, pv.status, pv.published_time, dict(pv.assets), dict(pv.metadata)
            )
            done[version] = {"revision": revision(pv), "status": pv.status}
        format_of(coordinate.format).versions_copied(record, list(done))

    await api.catalog.update_package(destination, coordinate, copy, commit=True)
    await committed(api, coordinate)
    return _results((done, failed))


async def _copy_sources(
    call: Call, source: str, include_upstream: bool
) -> tuple[ApiServices, PackageCoordinate, dict[str, PackageVersionRecord]]:
    """The versions a copy may take: the source repository's, then (``include_upstream``) those of the
    local repositories of its chain, the first in chain order winning."""
    api = check_repository(call, source)
    coordinate = coordinate_of(call)
    places = [p.name for p in api.chain.places(source) if p.is_repository]
    found: dict[str, PackageVersionRecord] = {}
    for name in places if include_upstream else [source]:
        record = await api.catalog.package(name, coordinate)
        for version, pv in (record.versions if record else {}).items():
            found.setdefault(version, pv)
    if not found and await api.catalog.package(source, coordinate) is None:
        raise not_found(
            "package", package_id(coordinate), f"package {package_id(coordinate)} is not in {source}"
        )
    return api, coordinate, found
