"""The CodeArtifact actions a package client's request needs, as IAM names them: what authorization
checks a data-plane request against. Formats decide which one a request of theirs needs
(``Format.action``); the plain HTTP reading below is every format's default."""

from __future__ import annotations

READ = "ReadFromRepository"
PUBLISH = "PublishPackageVersion"
PUT_METADATA = "PutPackageMetadata"
DELETE = "DeletePackageVersions"

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def http_action(method: str) -> str:
    """Reads read, DELETE deletes package versions, every other method publishes."""
    if method in _READ_METHODS:
        return READ
    return DELETE if method == "DELETE" else PUBLISH
