"""Upstreams: CodeArtifact repositories and plain registries, behind one small interface.

The interface is documented in ``proxy.upstream.base``; ``proxy.upstream.registry.build_upstreams``
builds every configured upstream (and the token providers of the CodeArtifact domains).
"""

from proxy.upstream.base import Upstream, UpstreamResponse, UpstreamUnavailable

__all__ = ["Upstream", "UpstreamResponse", "UpstreamUnavailable"]
