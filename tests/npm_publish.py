"""The daemon's npm publish parsing without a store, for tests: the body streamed through
``PublishBody`` in small chunks, each tarball's digests computed here where the store's writer would."""

from __future__ import annotations

import hashlib

from proxy.formats.npm.names import PackageName
from proxy.formats.npm.publish import PublishRequest, check_publish
from proxy.formats.npm.publish_body import PublishBody
from proxy.store.blobs import BlobInfo


def parse_publish(package: PackageName, body: bytes, chunk: int = 97) -> tuple[PublishRequest, list[bytes]]:
    """The checked publish request and every tarball of the body (``NewVersion.attachment`` indexes
    them); raises PublishRefused as the daemon would."""
    reader = PublishBody()
    tarballs: dict[int, bytearray] = {}
    for at in range(0, len(body), chunk):
        for index, data in reader.feed(body[at : at + chunk]):
            tarballs.setdefault(index, bytearray()).extend(data)
    doc = reader.finish()
    contents = [bytes(tarballs.get(index, b"")) for index in range(len(reader.tarballs))]
    infos = []
    for data in contents:
        digests = (hashlib.sha256(data), hashlib.sha512(data), hashlib.sha1(data), hashlib.md5(data))
        infos.append(BlobInfo("", len(data), *(d.hexdigest() for d in digests)))
    return check_publish(package, doc, infos), contents
