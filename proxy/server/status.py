"""``GET /-/status``: what the daemon holds and how its upstreams are, as JSON for ``codeartifact-proxy
status`` (an internal endpoint of this proxy, not part of the CodeArtifact API; like /readyz it asks for
no credentials and holds no secret: token expiry times only, never tokens).

    {"offline": bool,
     "repositories": [{"name", "publish", "upstreams", "packages", "versions", "published_versions"}],
     "store": {"path", "blobs", "size", "cached_size", "max_size"},
     "upstreams": [{"name", "kind", "formats", "healthy", "reason"}],
     "codeartifact": [{"name", "healthy", "reason", "token_expires_at"}]}

Counting reads every catalog record (through the catalog service); upstream health is a GET of each upstream's
endpoint, at most ``PROBE_TIMEOUT`` seconds each, all at once (none in offline mode). ``size`` is every
blob's bytes, ``cached_size`` the evictable part that ``max_size`` bounds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from proxy.config import model
from proxy.daemon import Daemon
from proxy.upstream.base import Upstream, UpstreamUnavailable

PROBE_TIMEOUT = 5.0


async def status(daemon: Daemon) -> web.Response:
    repositories, store = await _store_status(daemon)
    upstreams = await asyncio.gather(
        *(_probe(daemon, name, upstream) for name, upstream in sorted(daemon.upstreams.items()))
    )
    domains = [
        {
            "name": health.name,
            "healthy": health.healthy,
            "reason": health.reason,
            "token_expires_at": health.token_expires_at,
        }
        for health in daemon.domain_health()
    ]
    body = {
        "offline": daemon.config.server.offline,
        "repositories": repositories,
        "store": store,
        "upstreams": list(upstreams),
        "codeartifact": domains,
    }
    return web.json_response(body)


async def _store_status(daemon: Daemon) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    counts = {
        name: {"packages": 0, "versions": 0, "published_versions": 0} for name in daemon.config.repositories
    }
    async for repository, record in daemon.services.catalog.records():
        count = counts.setdefault(repository, {"packages": 0, "versions": 0, "published_versions": 0})
        count["packages"] += 1
        count["versions"] += len(record.versions)
        count["published_versions"] += sum(
            v.origin.origin_type == "INTERNAL" for v in record.versions.values()
        )
    repositories = [
        {
            "name": name,
            "publish": config.publish if config else None,
            "upstreams": list(config.upstreams) if config else [],
            **counts[name],
        }
        for name in sorted(counts)
        for config in [daemon.config.repositories.get(name)]
    ]
    usage = daemon.usage
    store = {
        "path": str(daemon.config.cache.path),
        "blobs": usage.blob_count,
        "size": usage.total_size,
        "cached_size": usage.cached_size,
        "max_size": daemon.config.cache.max_size,
    }
    return repositories, store


async def _probe(daemon: Daemon, name: str, upstream: Upstream) -> dict[str, Any]:
    configured = daemon.config.upstreams.get(name)
    kind = "codeartifact" if isinstance(configured, model.CodeArtifactUpstream) else "url"
    result: dict[str, Any] = {"name": name, "kind": kind, "formats": sorted(upstream.formats)}
    if daemon.config.server.offline:
        return {**result, "healthy": None, "reason": "offline: not asked"}
    format = sorted(upstream.formats)[0]
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), upstream.open(format, "") as response:
            # Any HTTP answer (even a 404 for the bare endpoint) means the upstream is reachable
            # and took our credentials (open raises for rejected ones).
            return {**result, "healthy": True, "reason": None, "status": response.status}
    except UpstreamUnavailable as error:
        return {**result, "healthy": False, "reason": error.reason}
    except TimeoutError:
        return {**result, "healthy": False, "reason": f"no answer within {PROBE_TIMEOUT:g} s"}


async def catalog(daemon: Daemon, repository: str) -> web.Response:
    """``GET /-/catalog/{repository}``: every package version the repository's catalog holds, published
    and fetched, with its assets' names, sizes and SHA-256 digests (what ``export`` and ``import``
    compare and fetch; no blob ids, which are the store's own)."""
    if repository not in daemon.config.repositories:
        raise web.HTTPNotFound(reason=f"no repository {repository!r}")
    packages = await _catalog(daemon, repository)
    return web.json_response({"repository": repository, "packages": packages})


async def _catalog(daemon: Daemon, repository: str) -> list[dict[str, Any]]:
    packages = []
    catalog = daemon.services.catalog
    for coordinate in await catalog.packages(repository):
        record = await catalog.package(repository, coordinate)
        if record is None:
            continue
        versions = [
            {
                "version": pv.version,
                "origin": pv.origin.origin_type,
                "published_time": pv.published_time,
                "assets": [
                    {"name": a.name, "size": a.size, "sha256": a.hashes["SHA-256"]}
                    for a in pv.assets.values()
                ],
            }
            for pv in record.versions.values()
        ]
        packages.append({**vars(coordinate), "versions": versions})
    return packages


def add_routes(app: web.Application, daemon: Daemon) -> None:
    async def status_handler(request: web.Request) -> web.Response:
        return await status(daemon)

    async def catalog_handler(request: web.Request) -> web.Response:
        return await catalog(daemon, request.match_info["repository"])

    app.router.add_get("/-/status", status_handler)
    app.router.add_get("/-/catalog/{repository}", catalog_handler)
