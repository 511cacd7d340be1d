"""What to do with upstream content that declares no digest to verify it against (an npm version
without ``dist.integrity``/``dist.shasum``, a Maven file without a ``.sha512``/``.sha256``/``.sha1``/
``.md5`` beside it, a PyPI distribution file listed without a hash).

Each upstream has a ``checksum_policy``: ``"require"`` refuses such content (the client gets a 502 and
nothing is stored), ``"warn"`` serves and stores it with a logged warning. CodeArtifact repositories
always declare digests, so their upstreams require them; a registry by URL takes
``checksum_policy`` from its ``[upstream.NAME]`` table (default ``"warn"``: plain registries, Maven
ones in particular, do not all publish checksum files).

Applied in one place for every format: ``proxy.repository.fetch.Fetcher.asset`` when a format says
the asset's metadata declares no digest. Pure apart from the log line; safe from any task.
"""

from __future__ import annotations

import logging

from proxy.upstream.base import Upstream

log = logging.getLogger(__name__)


def unverified(upstream: Upstream, what: str) -> str | None:
    """Called when ``what`` (an asset's file name) from ``upstream`` declares no digest:
    the reason to refuse it under ``"require"``, else None after logging that it is not verified."""
    if getattr(upstream, "checksum_policy", "require") == "require":
        return (
            f"upstream {upstream.name} declares no checksum for {what}, and its checksum policy requires one"
        )
    log.warning("upstream %r declares no checksum for %s: served and stored unverified", upstream.name, what)
    return None
