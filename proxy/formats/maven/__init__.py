"""The Maven format: ``/maven/{repo}/`` in the Maven 2 layout (assets, checksums, merged
maven-metadata.xml, ``mvn deploy``)."""

from proxy.formats.maven.routes import add_routes

__all__ = ["add_routes"]
