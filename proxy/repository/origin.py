"""Package origin controls, with CodeArtifact's defaults.

A package first published to a repository gets ``publish=ALLOW, upstream=BLOCK``: versions of the same
name from upstreams are no longer taken (the dependency-confusion defence). A package first fetched
from an upstream gets ``publish=BLOCK, upstream=ALLOW``: publishing a name that exists upstream is
refused.
"""

from __future__ import annotations

from proxy.store.catalog import OriginConfiguration, PackageRecord

PUBLISHED_DEFAULT = OriginConfiguration(publish="ALLOW", upstream="BLOCK")
FETCHED_DEFAULT = OriginConfiguration(publish="BLOCK", upstream="ALLOW")


def publish_refusal(record: PackageRecord | None, repository: str, package: str) -> str | None:
    """Why publishing this package (``package``: its name as its format displays it) into
    ``repository`` is refused, or None when it is allowed."""
    if record is None or record.origin_configuration.publish == "ALLOW":
        return None
    return (
        f"package {package} in repository {repository} came from an upstream; its origin "
        "configuration blocks publishing (publish=BLOCK)"
    )


def upstream_blocked(record: PackageRecord | None) -> bool:
    """True when this package's versions must not be taken from upstreams."""
    return record is not None and record.origin_configuration.upstream == "BLOCK"
