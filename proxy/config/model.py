"""Typed, immutable configuration: what the TOML file says, after validation.

The loader (``proxy.config.loader``) builds these; everything else only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# A registered format's name ("npm", "pypi", "maven", ...: see proxy.formats.registry). The loader
# checks ``format =`` against the names it is given.
Format = str
# What to do with upstream content that declares no digest: refuse it, or serve it with a warning.
ChecksumPolicy = Literal["require", "warn"]
CHECKSUM_POLICIES: tuple[ChecksumPolicy, ...] = ("require", "warn")


@dataclass(frozen=True)
class Listen:
    """Where the server listens: a TCP host and port, or a unix socket path."""

    host: str | None = "127.0.0.1"
    port: int | None = 5080
    unix_path: Path | None = None

    def __str__(self) -> str:
        if self.unix_path:
            return f"unix:{self.unix_path}"
        # An IPv6 host is bracketed, as in the config file, so the port stays readable.
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ServerConfig:
    listen: Listen = field(default_factory=Listen)
    public_url: str | None = None
    log_format: Literal["text", "json"] = "text"
    shutdown_timeout: float = 30.0
    tls_cert_file: Path | None = None  # PEM; with tls_key_file, the listener speaks HTTPS
    tls_key_file: Path | None = None
    audit_log: Path | None = None  # None: audit lines go to stderr, beside the access log
    offline: bool = False  # no upstream connection at all (proxy.upstream.offline)
    # A client must send its request head within this long (slow-header connections hold sockets).
    header_timeout: float = 30.0
    # A publish (npm publish, twine upload, mvn deploy) larger than this is refused, on its
    # Content-Length before any of it is read.
    max_publish_size: int = 1024**3
    # Processes serving one listen address (SO_REUSEPORT), each a daemon of the shared store.
    workers: int = 1


Anonymous = Literal["none", "read", "all"]


@dataclass(frozen=True)
class AuthConfig:
    """``[auth]``: what a request without valid credentials may do."""

    anonymous: Anonymous = "all"


@dataclass(frozen=True)
class PrincipalConfig:
    """``[principal.NAME]``: a principal that signs /v1 requests (SigV4) with these keys."""

    name: str
    access_key_id: str
    secret_access_key_file: Path
    secret_access_key: str = field(repr=False)
    admin: bool = False


@dataclass(frozen=True)
class CacheConfig:
    path: Path
    key_file: Path
    max_size: int = 20 * 1024**3
    metadata_ttl: float = 300.0
    # A remembered "not found" (upstream 404s) saves asking again this long; past it, it still answers
    # for upstreams that cannot be reached (proxy.repository.fetch).
    not_found_ttl: float = 60.0
    old_key_files: tuple[Path, ...] = ()
    # An upstream metadata document (packument, simple page, maven-metadata, checksum file) past this
    # many decoded bytes is refused while it streams.
    max_document_size: int = 128 * 1024**2
    # Bytes of merged documents (packuments, simple pages, maven-metadata) and their renderings each
    # format keeps in memory, weighed as merged (proxy.formats.common.documents: past a quarter of it
    # views keep only their renderings; past all of it they are served from the store).
    documents_memory: int = 16 * 1024**2


@dataclass(frozen=True)
class StoreConfig:
    """``[store]``: where a store that several daemons share keeps its parts. Empty (the default): the
    catalog, ledger, metadata and blobs all live under ``[cache] path``, for one process."""

    # postgresql://user@host:port/database: catalog, ledger and metadata (the password comes from
    # PGPASSWORD or ~/.pgpass, never the file).
    catalog: str | None = None
    blobs: str | None = None  # an absolute path on a file system every host mounts, or s3://bucket/prefix
    s3_region: str | None = None
    s3_endpoint_url: str | None = None  # an S3-compatible server instead of AWS's
    # How long a daemon that died mid-fetch keeps the others from fetching that asset, at most
    # (a live one renews its lease while it fetches).
    lease_timeout: float = 30.0

    @property
    def shared(self) -> bool:
        return self.catalog is not None

    @property
    def s3(self) -> tuple[str, str] | None:
        """The bucket and the key prefix of S3 blobs, or None."""
        if self.blobs is None or not self.blobs.startswith("s3://"):
            return None
        bucket, _, prefix = self.blobs.removeprefix("s3://").partition("/")
        return bucket, prefix


@dataclass(frozen=True)
class CodeArtifactDomain:
    """One ``[codeartifact.NAME]`` table: a CodeArtifact domain the proxy fronts."""

    name: str
    domain: str
    domain_owner: str
    region: str
    profile: str | None = None
    duration: float = 12 * 3600.0
    endpoint_url: str | None = None
    allow_writes: bool = False  # /v1 write operations naming this domain are forwarded, not refused


@dataclass(frozen=True)
class DomainConfig:
    """``[domain]``: the proxy's own CodeArtifact domain, served on /v1."""

    name: str = "local"
    owner: str = "000000000000"


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the request-rate limit of /v1, per caller (a principal, or an anonymous caller's
    address). A caller may send ``burst`` requests at once, then ``requests_per_second`` on average;
    past that a request is answered 429 ThrottlingException. The defaults are far above what people
    and scripts with the aws CLI send."""

    requests_per_second: float = 50.0
    burst: int = 200


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    token: str | None = None  # with token_file: the token the file held at start
    token_file: Path | None = None  # read again whenever it changes (a token refreshed outside)

    def __repr__(self) -> str:
        # Secrets never reach logs, even through a stray repr().
        shown = {k: "***" for k in ("username", "password", "token") if getattr(self, k)}
        return f"Credentials({shown})"


@dataclass(frozen=True)
class CodeArtifactUpstream:
    """``[upstream.NAME]`` with ``codeartifact = DOMAIN``: a repository of a CodeArtifact domain."""

    name: str
    codeartifact: str
    repository: str


@dataclass(frozen=True)
class RegistryUpstream:
    """``[upstream.NAME]`` with ``url``: a plain registry by URL (an external connection)."""

    name: str
    format: Format
    url: str
    credentials: Credentials = field(default_factory=Credentials)
    external_connection: str | None = None  # CodeArtifact's name for it, e.g. "public:npmjs"
    checksum_policy: ChecksumPolicy = "warn"


# CodeArtifact's external connection names and the format of each (AssociateExternalConnection).
EXTERNAL_CONNECTIONS: Mapping[str, Format] = {
    "public:npmjs": "npm",
    "public:pypi": "pypi",
    "public:maven-central": "maven",
    "public:maven-googleandroid": "maven",
    "public:maven-gradleplugins": "maven",
    "public:maven-commonsware": "maven",
    "public:maven-clojars": "maven",
}


Upstream = CodeArtifactUpstream | RegistryUpstream


@dataclass(frozen=True)
class RepositoryConfig:
    """``[repository.NAME]``: a repository served at /npm/NAME/, /pypi/NAME/simple/, /maven/NAME/."""

    name: str
    upstreams: tuple[str, ...] = ()
    publish: bool = False


@dataclass(frozen=True)
class Config:
    source: str  # the file it came from, or "<embedded default>"
    server: ServerConfig
    cache: CacheConfig
    # Read-only mappings (MappingProxyType), keyed by the table name.
    codeartifact: Mapping[str, CodeArtifactDomain]
    upstreams: Mapping[str, Upstream]
    repositories: Mapping[str, RepositoryConfig]
    domain: DomainConfig = field(default_factory=DomainConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    principals: Mapping[str, PrincipalConfig] = field(default_factory=dict)
    store: StoreConfig = field(default_factory=StoreConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
