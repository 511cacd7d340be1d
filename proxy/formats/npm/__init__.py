"""The npm format: ``/npm/{repo}/`` as an npm registry root (packuments, tarballs, publish, dist-tags)."""

from proxy.formats.npm.routes import add_routes

__all__ = ["add_routes"]
