"""``export`` and ``import`` over HTTP, against a daemon's own endpoints (running, or started in this
process on a stopped one's store, see ``proxy.bundle.local``).

Export lists the repository's catalog (``GET /-/catalog/R``), then fetches each package version's
assets the way clients do (npm tarballs, PyPI files, Maven files) with the metadata the formats need to
publish them again (npm's version document, PyPI's ``requires_python``), checking every asset against
the catalog's SHA-256. Import publishes each intact entry through the formats' own publish endpoints
(``npm publish``'s PUT, the upload API's POST, Maven PUTs), so imported versions are published ones:
served like them, never evicted, protected by the same rules. Each asset streams from the bundle to
the daemon (npm's base64 attachment made piece by piece inside the JSON document), its digest checked
while it goes and its last piece held back until it matched: a blob changed since the bundle was
checked is refused, and the daemon, short of its last bytes, stores nothing. An entry already in the
repository with the same digests is "already there" (importing twice changes nothing); one with other
digests is a conflict, reported.

Concurrency: sequential, one httpx client; a bundle is written or read by one command.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from proxy.bundle import BlobChanged, Bundle, BundleWriter, Entry, VerifiedBlob

Key = tuple[str, str, str, str]  # format, namespace, name, version


@dataclass
class Report:
    done: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (entry, reason)


class TransferError(Exception):
    """One entry could not be exported or imported; the message says why."""


def _npm_name(namespace: str, name: str) -> str:
    return f"@{namespace}/{name}" if namespace else name


def _npm_path(base: str, repository: str, namespace: str, name: str) -> str:
    return f"{base}npm/{repository}/{quote(_npm_name(namespace, name), safe='@/').replace('/', '%2f')}"


def _maven_path(base: str, repository: str, entry: Entry, asset: str) -> str:
    return (
        f"{base}maven/{repository}/{entry.namespace.replace('.', '/')}/{entry.name}/{entry.version}/{asset}"
    )


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        reason = response.json().get("error")
    except (ValueError, AttributeError):
        reason = response.text[:200]
    raise TransferError(
        f"{response.request.method} {response.request.url}: HTTP {response.status_code} ({reason})"
    )


def catalog(client: httpx.Client, base: str, repository: str) -> list[Entry]:
    """The repository's package versions, as bundle entries without metadata."""
    packages = _check(client.get(f"{base}-/catalog/{repository}")).json()["packages"]
    entries = []
    for p in packages:
        for v in p["versions"]:
            # A wheel's PEP 658 metadata is derived from the wheel: the daemon makes it again on upload.
            assets = [
                a for a in v["assets"] if not (p["format"] == "pypi" and a["name"].endswith(".metadata"))
            ]
            if assets:
                entries.append(
                    Entry(p["format"], p["namespace"], p["name"], v["version"], v["published_time"], assets)
                )
    return entries


def export_entries(
    client: httpx.Client,
    base: str,
    repository: str,
    entries: Iterable[Entry],
    writer: BundleWriter,
    report: Report,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Entry]:
    """Fetch each entry's assets into ``writer``; returns the entries written whole."""
    documents: dict[str, Any] = {}
    written = []
    for entry in entries:
        try:
            entry.metadata = _metadata(client, base, repository, entry, documents)
            for asset in entry.assets:
                _fetch_asset(
                    client, _asset_url(client, base, repository, entry, asset, documents), asset, writer
                )
        except (TransferError, httpx.HTTPError) as error:
            report.failed.append((entry.label, str(error)))
            progress(f"failed: {entry.label}: {error}")
            continue
        written.append(entry)
        report.done.append(entry.label)
        progress(f"exported: {entry.label}")
    return written


def _document(client: httpx.Client, url: str, accept: str, documents: dict[str, Any]) -> Any:
    if url not in documents:
        documents[url] = _check(client.get(url, headers={"Accept": accept})).json()
    return documents[url]


def _pypi_file(
    client: httpx.Client, base: str, repository: str, entry: Entry, filename: str, documents: dict
) -> dict:
    page_url = f"{base}pypi/{repository}/simple/{entry.name}/"
    page = _document(client, page_url, "application/vnd.pypi.simple.v1+json", documents)
    for file in page.get("files", []):
        if file.get("filename") == filename:
            return {**file, "url": str(httpx.URL(page_url).join(file["url"]))}
    raise TransferError(f"{filename} is not on the simple page of {entry.name}")


def _metadata(
    client: httpx.Client, base: str, repository: str, entry: Entry, documents: dict
) -> dict[str, Any]:
    if entry.format == "npm":
        packument = _document(
            client, _npm_path(base, repository, entry.namespace, entry.name), "application/json", documents
        )
        version = (packument.get("versions") or {}).get(entry.version)
        if not isinstance(version, dict):
            raise TransferError(f"the packument has no version {entry.version}")
        tags = packument.get("dist-tags") if isinstance(packument.get("dist-tags"), dict) else {}
        return {"document": version, "dist_tags": {tag: v for tag, v in tags.items() if v == entry.version}}
    if entry.format == "pypi":
        file = _pypi_file(client, base, repository, entry, entry.assets[0]["name"], documents)
        return {"requires_python": file.get("requires-python")}
    return {}


def _asset_url(
    client: httpx.Client, base: str, repository: str, entry: Entry, asset: dict[str, Any], documents: dict
) -> str:
    if entry.format == "npm":
        return f"{base}npm/{repository}/{_npm_name(entry.namespace, entry.name)}/-/{asset['name']}"
    if entry.format == "pypi":
        return _pypi_file(client, base, repository, entry, asset["name"], documents)["url"]
    return _maven_path(base, repository, entry, asset["name"])


def _fetch_asset(client: httpx.Client, url: str, asset: dict[str, Any], writer: BundleWriter) -> None:
    hasher = hashlib.sha256()
    with tempfile.TemporaryFile() as spool, client.stream("GET", url) as response:
        if not response.is_success:
            response.read()
            _check(response)
        for chunk in response.iter_bytes():
            hasher.update(chunk)
            spool.write(chunk)
        if hasher.hexdigest() != asset["sha256"]:
            raise TransferError(f"{asset['name']}: the daemon sent bytes whose SHA-256 is not the catalog's")
        size = spool.tell()
        spool.seek(0)
        writer.add_blob(asset["sha256"], spool, size)


def import_bundle(
    client: httpx.Client,
    base: str,
    repository: str,
    bundle: Bundle,
    report: Report,
    progress: Callable[[str], None] = lambda line: None,
) -> None:
    """Publish every intact entry of ``bundle`` not already in the repository (see module docstring)."""
    present = {
        (e.format, e.namespace, e.name, e.version): {a["name"]: a["sha256"] for a in e.assets}
        for e in catalog(client, base, repository)
    }
    for entry in bundle.entries:
        label = entry.label
        broken = bundle.broken(entry)
        if broken:
            report.failed.append(
                (label, f"damaged in the bundle (digest mismatch or missing): {', '.join(broken)}")
            )
            progress(f"skipped: {label}: damaged: {', '.join(broken)}")
            continue
        wanted = {a["name"]: a["sha256"] for a in entry.assets}
        there = present.get((entry.format, entry.namespace, entry.name, entry.version))
        if there is not None and all(there.get(name) == digest for name, digest in wanted.items()):
            report.already.append(label)
            progress(f"already there: {label}")
            continue
        try:
            if there is not None and any(name in there and there[name] != d for name, d in wanted.items()):
                raise TransferError("the repository holds this version with other contents")
            _publish(client, base, repository, entry, bundle, skip=set(there or ()))
        except (TransferError, BlobChanged, httpx.HTTPError) as error:
            report.failed.append((label, str(error)))
            progress(f"failed: {label}: {error}")
            continue
        report.done.append(label)
        progress(f"imported: {label}")


def _publish(
    client: httpx.Client, base: str, repository: str, entry: Entry, bundle: Bundle, skip: set[str]
) -> None:
    """Publish ``entry`` with its assets streamed from the bundle (``VerifiedBlob``: checked while
    sent, the last piece held back until it matched, so the daemon never gets a whole wrong copy)."""
    if entry.format == "npm":
        name = _npm_name(entry.namespace, entry.name)
        (asset,) = entry.assets
        prefix, suffix = _npm_document(name, entry, asset)
        blob = bundle.open_blob(asset["sha256"])
        length = len(prefix) + 4 * -(-blob.size // 3) + len(suffix)
        _check(
            client.put(
                _npm_path(base, repository, entry.namespace, entry.name),
                content=_npm_body(prefix, blob, suffix),
                headers={"Content-Type": "application/json", "Content-Length": str(length)},
            )
        )
    elif entry.format == "pypi":
        for asset in entry.assets:
            if asset["name"] in skip:
                continue
            filename = asset["name"]
            wheel = filename.endswith(".whl")
            form = {
                ":action": "file_upload",
                "protocol_version": "1",
                "name": entry.name,
                "version": entry.version,
                "metadata_version": "2.1",
                "filetype": "bdist_wheel" if wheel else "sdist",
                "pyversion": filename.split("-")[-3] if wheel else "source",
                "sha256_digest": asset["sha256"],
            }
            if entry.metadata.get("requires_python"):
                form["requires_python"] = entry.metadata["requires_python"]
            blob = bundle.open_blob(asset["sha256"])
            content = {"content": (filename, blob, "application/octet-stream")}
            _check(client.post(f"{base}pypi/{repository}/", data=form, files=content))
    else:
        # The POM last: a version is complete once its POM is there.
        for asset in sorted(entry.assets, key=lambda a: a["name"].endswith(".pom")):
            if asset["name"] not in skip:
                url = _maven_path(base, repository, entry, asset["name"])
                blob = bundle.open_blob(asset["sha256"])
                _check(client.put(url, content=iter(blob), headers={"Content-Length": str(blob.size)}))


_ATTACHMENT = "codeartifact-proxy-bundle-attachment"  # stands for the base64 data while the JSON is made


def _npm_document(name: str, entry: Entry, asset: dict[str, Any]) -> tuple[bytes, bytes]:
    """``npm publish``'s JSON document for ``entry``, cut where the attachment's base64 data goes."""
    body = {
        "_id": name,
        "name": name,
        "dist-tags": entry.metadata.get("dist_tags") or {},
        "versions": {entry.version: entry.metadata["document"]},
        "_attachments": {
            f"{name}-{entry.version}.tgz": {
                "content_type": "application/octet-stream",
                "data": _ATTACHMENT,
                "length": asset["size"],
            }
        },
    }
    prefix, suffix = json.dumps(body).rsplit(f'"{_ATTACHMENT}"', 1)
    return f'{prefix}"'.encode(), f'"{suffix}'.encode()


def _npm_body(prefix: bytes, blob: VerifiedBlob, suffix: bytes) -> Iterator[bytes]:
    """The document's bytes with the blob's base64 in its place, a piece at a time."""
    yield prefix
    rest = b""
    for piece in blob:
        data = rest + piece
        cut = len(data) - len(data) % 3  # base64 of whole 3-byte groups joins without padding
        yield base64.b64encode(data[:cut])
        rest = data[cut:]
    yield base64.b64encode(rest) + suffix
