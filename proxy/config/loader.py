"""Read the TOML configuration file and validate it into the typed model of ``proxy.config.model``.

Called once at start (``serve``, ``check-config``, ...) before anything else runs. It reads the
environment only through the ``environ`` argument, never at import time, and keeps no state, so it is
safe to call from any thread. Every problem is a ``ConfigError`` naming the file, the key and the
reason, which the CLI prints as one line instead of a traceback. Secret values (passwords, tokens)
never appear in those messages.

Layout: ``_Table`` does the typed reads of one TOML table and refuses keys nobody read; one small
function per table kind (``_server``, ``_cache``, ``_codeartifact_domain``, ``_upstream``,
``_repository``) uses it; rules that span tables (references, loops, ambiguous names) run once every
table has been read.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import stat
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from proxy.config.model import (
    CHECKSUM_POLICIES,
    EXTERNAL_CONNECTIONS,
    Anonymous,
    ApiConfig,
    AuthConfig,
    CacheConfig,
    ChecksumPolicy,
    CodeArtifactDomain,
    CodeArtifactUpstream,
    Config,
    Credentials,
    DomainConfig,
    Format,
    Listen,
    PrincipalConfig,
    RegistryUpstream,
    RepositoryConfig,
    ServerConfig,
    StoreConfig,
    Upstream,
)
from proxy.config.units import parse_duration, parse_size

ENV_VAR = "CODEARTIFACT_PROXY_CONFIG"
EMBEDDED_SOURCE = "<embedded default>"
APP_DIR = "codeartifact-proxy"
# The embedded default goes through the same validation as any file.
_EMBEDDED_TOML = """
[repository.local]
publish = true
"""

MAX_UPSTREAMS = 10  # CodeArtifact's limit of upstream repositories per repository
TOKEN_DURATIONS = (900.0, 43200.0)  # GetAuthorizationToken's durationSeconds range (0 is allowed too)

_REPOSITORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,99}")
_REPOSITORY_RULE = "2-100 characters: letters, digits, '.', '_' and '-', starting with a letter or digit"
_DOMAIN_NAME = re.compile(r"[a-z][a-z0-9-]{0,48}[a-z0-9]")
_DOMAIN_RULE = "2-50 characters of a-z, 0-9 and '-', starting with a letter, ending with a letter or digit"
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]{4,128}")
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_LISTEN = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]\s]+)):(?P<port>[0-9]+)")
_LISTEN_FORMS = "expected 'host:port', '[v6 address]:port' or 'unix:/path/to/socket'"
_TOML_POSITION = re.compile(
    r"(?P<reason>.*) \(at (?P<where>line \d+, column \d+|end of document)\)", re.DOTALL
)

T = TypeVar("T")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)
Q = TypeVar("Q", int, float)


class ConfigError(Exception):
    """A configuration problem: which file, which key (dotted, e.g. ``repository.dev.upstreams[1]``), why."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(file, key, reason)
        self.file = file
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}" if self.key else f"{self.file}: {self.reason}"


def resolve_config_path(path: str | Path | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The file to read: *path* if given, else ``$CODEARTIFACT_PROXY_CONFIG``, else None (the default)."""
    chosen = str(path) if path is not None else environ.get(ENV_VAR) or None
    return None if chosen is None else _expand_user(chosen, environ)


def load_config(
    path: str | Path | None, environ: Mapping[str, str] = os.environ, *, formats: Collection[Format]
) -> Config:
    """Load and validate the configuration; see ``resolve_config_path`` for which file is read.
    ``formats``: the names ``format =`` may take (the registered formats, ``proxy.formats.registry``)."""
    chosen = resolve_config_path(path, environ)
    if chosen is None:
        return embedded_default(environ)
    source = str(chosen.absolute())
    try:
        with chosen.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(
            source, "", f"cannot read the configuration file: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(source, "", "cannot read the configuration file: it is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(source, error) from None
    return _build(data, _Context(source, Path(source).parent, environ, tuple(formats)))


def embedded_default(environ: Mapping[str, str] = os.environ) -> Config:
    """The configuration used when no file is named: one publishable repository ``local``, no upstreams."""
    return _build(tomllib.loads(_EMBEDDED_TOML), _Context(EMBEDDED_SOURCE, _home(environ), environ, ()))


def redacted(config: Config) -> dict[str, Any]:
    """The resolved configuration as JSON-ready data for ``check-config``; passwords and tokens are "***"."""
    return {
        "source": config.source,
        "server": _plain(config.server),
        "cache": _plain(config.cache),
        "domain": _plain(config.domain),
        "store": _plain(config.store),
        "api": _plain(config.api),
        "codeartifact": _plain(config.codeartifact),
        "upstream": _plain(config.upstreams),
        "repository": _plain(config.repositories),
        "auth": _plain(config.auth),
        "principal": _plain(config.principals),
    }


def _build(data: dict[str, Any], ctx: _Context) -> Config:
    root = _Table(ctx, "", data)
    server, cache, domain = root.table("server"), root.table("cache"), root.table("domain")
    server, cache, store = root.table("server"), root.table("cache"), root.table("store")
    api_table = root.table("api")
    domain_tables, upstream_tables = root.tables("codeartifact"), root.tables("upstream")
    repository_tables = root.tables("repository")
    auth_table = root.table("auth") if root.has("auth") else None
    principal_tables = root.tables("principal")
    # A misspelt table name is reported before the errors its absence would cause.
    root.finish()
    if not repository_tables:
        raise root.error("repository", "no [repository.NAME] table: define at least one repository to serve")
    server_config, cache_config, domain_config = _server(server), _cache(cache), _domain(domain)
    store_config = _store(store)
    domains = _by_name(_codeartifact_domain(t) for t in domain_tables)
    for t in domain_tables:
        if domains[t.name].domain == domain_config.name:
            raise t.error(
                "domain",
                f"'{domain_config.name}' is also the proxy's own domain ([domain] name); "
                "/v1 could not tell which one a request means, rename one",
            )
    upstreams = _by_name(_upstream(t, domains) for t in upstream_tables)
    _check_external_connections(ctx, upstreams)
    repository_names = [t.name for t in repository_tables]
    for t in repository_tables:
        if t.name in upstreams:
            raise t.fail(
                f"'{t.name}' is defined both as [upstream.{t.name}] and [repository.{t.name}]; "
                "an upstreams list could not tell which one it means, rename one"
            )
    repositories = _by_name(_repository(t, list(upstreams), repository_names) for t in repository_tables)
    _check_loops(ctx, repositories)
    auth = _auth(ctx, auth_table, server_config.listen)
    principals = _by_name(_principal(t) for t in principal_tables)
    _check_access_keys(ctx, principals)
    return Config(
        source=ctx.source,
        server=server_config,
        cache=cache_config,
        codeartifact=domains,
        upstreams=upstreams,
        repositories=repositories,
        domain=domain_config,
        auth=auth,
        principals=principals,
        store=store_config,
        api=_api(api_table),
    )


def _workers(t: _Table) -> int:
    """``[server] workers``: a number of processes, or "auto" for one per core."""
    value = t.raw("workers", (int, str), 'a number of processes or "auto"')
    if value is None:
        return ServerConfig.workers
    if value == "auto":
        return os.cpu_count() or 1
    if isinstance(value, str) or value < 1:
        raise t.error("workers", f'must be a number of processes (1 or more) or "auto"; got {value!r}')
    return value


def _domain(t: _Table) -> DomainConfig:
    name = t.string("name")
    if name is not None and not _DOMAIN_NAME.fullmatch(name):
        raise t.error("name", f"a CodeArtifact domain name needs {_DOMAIN_RULE}; got {name!r}")
    owner = t.string("owner")
    if owner is not None and not _ACCOUNT_ID.fullmatch(owner):
        raise t.error("owner", f'an AWS account id is 12 digits, e.g. "111122223333"; got {owner!r}')
    t.finish()
    return DomainConfig(name=name or DomainConfig.name, owner=owner or DomainConfig.owner)


def _api(t: _Table) -> ApiConfig:
    rate = t.number("requests_per_second", ApiConfig.requests_per_second)
    if rate <= 0:
        raise t.error("requests_per_second", f"must be more than 0, got {rate}")
    burst = t.number("burst", ApiConfig.burst)
    if not isinstance(burst, int) or burst < 1:
        raise t.error("burst", f"must be a whole number of requests, at least 1; got {burst}")
    t.finish()
    return ApiConfig(requests_per_second=float(rate), burst=burst)


def _server(t: _Table) -> ServerConfig:
    config = ServerConfig(
        listen=_listen(t),
        public_url=t.url("public_url", trailing_slash=True),
        log_format=cast(Literal["text", "json"], t.choice("log_format", ("text", "json")) or "text"),
        shutdown_timeout=t.duration("shutdown_timeout", ServerConfig.shutdown_timeout),
        header_timeout=_positive(
            t, "header_timeout", t.duration("header_timeout", ServerConfig.header_timeout)
        ),
        max_publish_size=_positive(
            t, "max_publish_size", t.size("max_publish_size", ServerConfig.max_publish_size)
        ),
        tls_cert_file=_optional_path(t, "tls_cert_file"),
        tls_key_file=_optional_path(t, "tls_key_file"),
        audit_log=_optional_path(t, "audit_log"),
        offline=t.boolean("offline", ServerConfig.offline),
        workers=_workers(t),
    )
    if config.workers > 1 and config.listen.unix_path is not None:
        raise t.error("workers", "several workers share a TCP listen address; a unix socket takes one")
    if (config.tls_cert_file is None) != (config.tls_key_file is None):
        given, other = ("tls_cert_file", "tls_key_file")
        if config.tls_key_file is not None:
            given, other = other, given
        raise t.error(other, f"{given} is set, so {other} is needed too (both PEM files)")
    t.finish()
    return config


def _optional_path(t: _Table, name: str) -> Path | None:
    value = t.string(name)
    return None if value is None else t.ctx.path(value)


def is_loopback(listen: Listen) -> bool:
    """A unix socket, or a TCP host that only this machine can reach."""
    if listen.unix_path is not None:
        return True
    if listen.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(listen.host or "").is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _auth(ctx: _Context, t: _Table | None, listen: Listen) -> AuthConfig:
    """``[auth]``; without the table, anonymous "all" on a loopback listener and a refusal otherwise."""
    if t is None:
        if is_loopback(listen):
            return AuthConfig()
        raise ctx.error(
            "auth",
            f"listen address {listen} is not loopback, so anyone on the network could use the proxy: "
            'add [auth] with anonymous = "none" (or "read") and [principal.NAME] tables',
        )
    anonymous = cast(Anonymous, t.choice("anonymous", ("none", "read", "all")) or "all")
    if anonymous == "all" and not is_loopback(listen):
        raise t.error(
            "anonymous",
            f'"all" is only allowed when the listen address is loopback or a unix socket, not {listen}; '
            'use "none" or "read"',
        )
    t.finish()
    return AuthConfig(anonymous=anonymous)


def _principal(t: _Table) -> PrincipalConfig:
    access_key_id = t.matching(
        "access_key_id", _ACCESS_KEY_ID, "an access key id is 4-128 letters and digits, e.g. AKIDEXAMPLE"
    )
    secret_file = t.path("secret_access_key_file", Path())
    if not t.has("secret_access_key_file"):
        raise t.missing("secret_access_key_file")
    secret = _read_secret_file(t, "secret_access_key_file", secret_file)
    admin = t.boolean("admin", False)
    t.finish()
    return PrincipalConfig(t.name, access_key_id, secret_file, secret, admin)


def _read_secret_file(t: _Table, name: str, path: Path, what: str = "secret access key") -> str:
    """The secret (``what``) in ``path``; refused unless it is a regular file only its owner may read."""
    try:
        return read_secret_file(path, what)[0]
    except SecretFileError as error:
        raise t.error(name, str(error)) from None


class SecretFileError(Exception):
    """A secret file that cannot be used; the message names the file and why, never its content."""


def read_secret_file(path: Path, what: str) -> tuple[str, os.stat_result]:
    """The secret (``what``: what the file holds, for messages) in ``path``, and the file's status when
    read. Raises SecretFileError unless it is a regular file only its owner may read, holding one
    secret on one line."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the start.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise SecretFileError(f"cannot open {path}: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise SecretFileError(
                f"{path} may be read by group or others (mode {mode:04o}); run: chmod 600 {path}"
            )
        raw = os.read(fd, 4097)
    except OSError as error:
        raise SecretFileError(f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(fd)
    try:
        secret = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"{path} does not hold a {what} (not ASCII text)") from None
    if not secret or len(raw) > 4096 or any(c.isspace() for c in secret):
        raise SecretFileError(f"{path} must hold one {what} on one line")
    return secret, info


def _check_access_keys(ctx: _Context, principals: Mapping[str, PrincipalConfig]) -> None:
    seen: dict[str, str] = {}
    for principal in principals.values():
        other = seen.setdefault(principal.access_key_id, principal.name)
        if other != principal.name:
            raise ctx.error(
                f"{_join('principal', principal.name)}.access_key_id",
                f"the same access key id as [principal.{other}]; each principal needs its own",
            )


def _listen(t: _Table) -> Listen:
    text = t.string("listen")
    if text is None:
        return Listen()
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path:
            raise t.error("listen", "'unix:' needs a socket path, e.g. 'unix:/run/codeartifact-proxy.sock'")
        return Listen(host=None, port=None, unix_path=t.ctx.path(path))
    match = _LISTEN.fullmatch(text)
    if match is None:
        raise t.error("listen", f"{_LISTEN_FORMS}; got {text!r}")
    if match["v6"] is not None:
        try:
            ipaddress.IPv6Address(match["v6"])
        except ValueError:
            raise t.error("listen", f"{match['v6']!r} in brackets is not an IPv6 address") from None
    port = int(match["port"])
    if port > 65535:
        raise t.error("listen", f"port {port} is out of range 0-65535 (0 picks a free port)")
    return Listen(host=match["v6"] or match["host"], port=port)


def _cache(t: _Table) -> CacheConfig:
    environ = t.ctx.environ
    config = CacheConfig(
        path=t.path("path", _xdg_dir(environ, "XDG_CACHE_HOME", ".cache") / APP_DIR),
        key_file=t.path("key_file", _xdg_dir(environ, "XDG_CONFIG_HOME", ".config") / APP_DIR / "cache.key"),
        max_size=t.size("max_size", CacheConfig.max_size),
        metadata_ttl=t.duration("metadata_ttl", CacheConfig.metadata_ttl),
        not_found_ttl=t.duration("not_found_ttl", CacheConfig.not_found_ttl),
        old_key_files=t.paths("old_key_files"),
        max_document_size=_positive(
            t, "max_document_size", t.size("max_document_size", CacheConfig.max_document_size)
        ),
        documents_memory=_positive(
            t, "documents_memory", t.size("documents_memory", CacheConfig.documents_memory)
        ),
    )
    t.finish()
    return config


_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _store(t: _Table) -> StoreConfig:
    """``[store]``: a catalog in PostgreSQL and blobs on a shared path or S3, both or neither."""
    catalog, blobs = _catalog_dsn(t), _shared_blobs(t)
    if catalog is not None and blobs is None:
        raise t.error(
            "blobs",
            "a PostgreSQL catalog is shared by several daemons, so the blobs must be too: "
            "set blobs to a path every host mounts or to s3://bucket/prefix",
        )
    if blobs is not None and catalog is None:
        raise t.error("catalog", 'shared blobs need a shared catalog: set catalog = "postgresql://..."')
    s3 = blobs is not None and blobs.startswith("s3://")
    region, endpoint = t.string("s3_region"), t.url("s3_endpoint_url", trailing_slash=False)
    for name, value in (("s3_region", region), ("s3_endpoint_url", endpoint)):
        if value is not None and not s3:
            raise t.error(name, 'applies to S3 blobs only (blobs = "s3://bucket/prefix")')
    lease_timeout = t.duration("lease_timeout", StoreConfig.lease_timeout)
    if lease_timeout <= 0:
        raise t.error("lease_timeout", "must be more than 0 (a daemon renews its lease within it)")
    config = StoreConfig(
        catalog=catalog, blobs=blobs, s3_region=region, s3_endpoint_url=endpoint, lease_timeout=lease_timeout
    )
    t.finish()
    return config


def _catalog_dsn(t: _Table) -> str | None:
    value = t.string("catalog")
    if value is None:
        return None
    parts = urlsplit(value)
    # The value itself is not echoed: a mistyped one may still carry a password.
    if parts.scheme not in ("postgresql", "postgres"):
        raise t.error("catalog", "must be a postgresql:// URL (postgresql://user@host:5432/database)")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise t.error("catalog", "has a bad port number") from None
    if parts.password is not None or "password=" in parts.query:
        raise t.error("catalog", "must not contain a password; give it in PGPASSWORD or ~/.pgpass")
    if not parts.path.strip("/"):
        raise t.error("catalog", "must name a database (postgresql://user@host:5432/database)")
    return value


def _shared_blobs(t: _Table) -> str | None:
    value = t.string("blobs")
    if value is None:
        return None
    if value.startswith("s3://"):
        bucket, _, prefix = value.removeprefix("s3://").partition("/")
        if not _S3_BUCKET.fullmatch(bucket):
            raise t.error("blobs", f"{bucket!r} is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return f"s3://{bucket}/{prefix}"
    if "://" in value:
        raise t.error("blobs", "must be an absolute path or an s3://bucket/prefix URL")
    path = _expand_user(value, t.ctx.environ)
    if not path.is_absolute():
        raise t.error(
            "blobs", "must be an absolute path (a file system every host mounts) or s3://bucket/prefix"
        )
    return str(path)


def _codeartifact_domain(t: _Table) -> CodeArtifactDomain:
    domain = t.matching("domain", _DOMAIN_NAME, f"a CodeArtifact domain name needs {_DOMAIN_RULE}")
    owner = t.matching("domain_owner", _ACCOUNT_ID, 'an AWS account id is 12 digits, e.g. "111122223333"')
    region = t.matching("region", _REGION, 'an AWS region looks like "eu-west-1"')
    profile = t.string("profile")
    duration = t.duration("duration", CodeArtifactDomain.duration)
    if duration != 0 and not TOKEN_DURATIONS[0] <= duration <= TOKEN_DURATIONS[1]:
        raise t.error(
            "duration",
            f"{duration:g} s is outside CodeArtifact's token lifetimes: 0 (the session's own) "
            'or 900-43200 s ("15m" to "12h")',
        )
    endpoint_url = t.url("endpoint_url", trailing_slash=False)
    allow_writes = t.boolean("allow_writes", CodeArtifactDomain.allow_writes)
    t.finish()
    return CodeArtifactDomain(t.name, domain, owner, region, profile, duration, endpoint_url, allow_writes)


def _upstream(t: _Table, domains: Mapping[str, CodeArtifactDomain]) -> Upstream:
    by_codeartifact, by_url = t.has("codeartifact"), t.has("url")
    if by_codeartifact == by_url:
        which = "both" if by_codeartifact else "neither"
        raise t.fail(
            f"has {which} 'codeartifact' and 'url': set codeartifact = DOMAIN (+ repository) "
            "for a CodeArtifact repository, or format + url for a registry by URL"
        )
    return _codeartifact_upstream(t, domains) if by_codeartifact else _registry_upstream(t)


def _codeartifact_upstream(t: _Table, domains: Mapping[str, CodeArtifactDomain]) -> CodeArtifactUpstream:
    domain = t.required_string("codeartifact")
    if domain not in domains:
        raise t.error("codeartifact", _unknown("[codeartifact.*] table", domain, domains))
    repository = t.matching(
        "repository", _REPOSITORY_NAME, f"a CodeArtifact repository name needs {_REPOSITORY_RULE}"
    )
    t.finish()
    return CodeArtifactUpstream(name=t.name, codeartifact=domain, repository=repository)


def _registry_upstream(t: _Table) -> RegistryUpstream:
    format_ = t.choice("format", t.ctx.formats)
    if format_ is None:
        raise t.missing("format")
    url = cast(str, t.url("url", trailing_slash=True))
    credentials = Credentials(
        username=t.string("username"), password=t.string("password"), token=t.string("token")
    )
    if t.has("token_file"):
        if credentials.token:
            raise t.fail("set either token or token_file, not both")
        token_file = t.path("token_file", Path())
        token = _read_secret_file(t, "token_file", token_file, what="token")
        credentials = replace(credentials, token=token, token_file=token_file)
    if credentials.token and (credentials.username or credentials.password):
        given = " (token_file gives a token)" if credentials.token_file else ""
        raise t.fail(f"set either token or username/password, not both{given}")
    if credentials.username and not credentials.password:
        raise t.error("password", "username needs a password")
    if credentials.password and not credentials.username:
        raise t.error("username", "password needs a username")
    external = t.string("external_connection")
    if external is not None:
        if external not in EXTERNAL_CONNECTIONS:
            raise t.error(
                "external_connection", _unknown("external connection", external, EXTERNAL_CONNECTIONS)
            )
        if EXTERNAL_CONNECTIONS[external] != format_:
            raise t.error(
                "external_connection",
                f"{external} is a {EXTERNAL_CONNECTIONS[external]} external connection, "
                f"but this upstream's format is {format_}",
            )
    policy = cast(ChecksumPolicy, t.choice("checksum_policy", CHECKSUM_POLICIES) or "warn")
    t.finish()
    return RegistryUpstream(
        name=t.name,
        format=format_,
        url=url,
        credentials=credentials,
        external_connection=external,
        checksum_policy=policy,
    )


def _check_external_connections(ctx: _Context, upstreams: Mapping[str, Upstream]) -> None:
    """One upstream per external connection name, so AssociateExternalConnection knows which it means."""
    claimed: dict[str, str] = {}
    for upstream in upstreams.values():
        name = getattr(upstream, "external_connection", None)
        if name is None:
            continue
        if name in claimed:
            raise ctx.error(
                _join(_join("upstream", upstream.name), "external_connection"),
                f"{name} is already the external connection of [upstream.{claimed[name]}]",
            )
        claimed[name] = upstream.name


def _positive(t: _Table, name: str, value: Q) -> Q:
    if value <= 0:
        raise t.error(name, f"must be more than 0, got {value}")
    return value


def _repository(
    t: _Table, upstream_names: Sequence[str], repository_names: Sequence[str]
) -> RepositoryConfig:
    if not _REPOSITORY_NAME.fullmatch(t.name):
        raise t.fail(f"repository name {t.name!r} breaks CodeArtifact's rules: {_REPOSITORY_RULE}")
    upstreams = t.strings("upstreams")
    if len(upstreams) > MAX_UPSTREAMS:
        raise t.error(
            "upstreams",
            f"{len(upstreams)} upstreams; CodeArtifact allows at most {MAX_UPSTREAMS} per repository",
        )
    known = [*upstream_names, *(name for name in repository_names if name != t.name)]
    for index, name in enumerate(upstreams):
        if name == t.name:
            raise t.item_error("upstreams", index, "a repository cannot be its own upstream")
        if name in upstreams[:index]:
            raise t.item_error("upstreams", index, f"'{name}' is already listed at [{upstreams.index(name)}]")
        if name not in known:
            raise t.item_error("upstreams", index, _unknown("upstream", name, known))
    config = RepositoryConfig(
        name=t.name, upstreams=upstreams, publish=t.boolean("publish", RepositoryConfig.publish)
    )
    t.finish()
    return config


def _check_loops(ctx: _Context, repositories: Mapping[str, RepositoryConfig]) -> None:
    """Refuse a chain of repositories that comes back to where it started (a -> b -> a)."""
    finished: set[str] = set()

    def visit(path: list[str]) -> None:
        for index, upstream in enumerate(repositories[path[-1]].upstreams):
            if upstream not in repositories or upstream in finished:
                continue
            if upstream in path:
                loop = " -> ".join([*path[path.index(upstream) :], upstream])
                key = f"{_join(_join('repository', path[-1]), 'upstreams')}[{index}]"
                raise ctx.error(key, f"the upstream chain loops: {loop}")
            visit([*path, upstream])
        finished.add(path[-1])

    for name in repositories:
        if name not in finished:
            visit([name])


class _Context:
    """What every table's validation needs: the file (for errors and relative paths) and the environment."""

    def __init__(
        self, source: str, folder: Path, environ: Mapping[str, str], formats: tuple[Format, ...]
    ) -> None:
        self.source = source
        self.folder = folder
        self.environ = environ
        self.formats = formats  # the registered formats' names

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.source, key, reason)

    def path(self, text: str) -> Path:
        """A path from the file: "~" expanded, relative paths taken from the config file's folder."""
        path = _expand_user(text, self.environ)
        return path if path.is_absolute() else self.folder / path


class _Table:
    """One TOML table under validation: typed reads of its keys, then ``finish()`` refuses the rest."""

    def __init__(self, ctx: _Context, key: str, data: object, name: str = "") -> None:
        if not isinstance(data, dict):
            raise ctx.error(key, f"expected a table, got {_type_name(data)}")
        self.ctx = ctx
        self.key = key
        self.name = name
        self._data: dict[str, Any] = data
        self._known: list[str] = []

    def key_of(self, name: str) -> str:
        return _join(self.key, name)

    def error(self, name: str, reason: str) -> ConfigError:
        return self.ctx.error(self.key_of(name), reason)

    def item_error(self, name: str, index: int, reason: str) -> ConfigError:
        return self.ctx.error(f"{self.key_of(name)}[{index}]", reason)

    def fail(self, reason: str) -> ConfigError:
        """An error about this table as a whole."""
        return self.ctx.error(self.key, reason)

    def missing(self, name: str) -> ConfigError:
        return self.error(name, "missing required key")

    def has(self, name: str) -> bool:
        return name in self._data

    def raw(self, name: str, kinds: tuple[type, ...], expected: str) -> Any:
        """The value of *name* (None when absent), checked to be one of ``kinds``."""
        return self._get(name, kinds, expected)

    def _get(self, name: str, kinds: tuple[type, ...], expected: str) -> Any:
        """The raw value of *name* (None when absent) after checking its TOML type."""
        self._known.append(name)
        if name not in self._data:
            return None
        value = self._data[name]
        # TOML booleans are Python ints; never let true pass for a number.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.error(name, f"expected {expected}, got {_type_name(value)}")
        return value

    def string(self, name: str) -> str | None:
        value = self._get(name, (str,), "a string")
        if value == "":
            raise self.error(name, "must not be empty")
        return value

    def required_string(self, name: str) -> str:
        value = self.string(name)
        if value is None:
            raise self.missing(name)
        return value

    def matching(self, name: str, pattern: re.Pattern[str], rule: str) -> str:
        """A required string that must match *pattern*; *rule* tells the user what is expected."""
        value = self.required_string(name)
        if not pattern.fullmatch(value):
            raise self.error(name, f"{value!r} is not valid: {rule}")
        return value

    def choice(self, name: str, choices: Sequence[str]) -> str | None:
        value = self.string(name)
        if value is not None and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, (bool,), "true or false")
        return default if value is None else value

    def number(self, name: str, default: float) -> float:
        value = self._get(name, (int, float), "a number")
        return default if value is None else value

    def size(self, name: str, default: int) -> int:
        value = self._get(name, (int, str), 'a size such as "20GiB"')
        return default if value is None else self._parse(name, parse_size, value)

    def duration(self, name: str, default: float) -> float:
        value = self._get(name, (int, float, str), 'a duration such as "5m"')
        return default if value is None else self._parse(name, parse_duration, value)

    def _parse(self, name: str, parse: Callable[[Any], T], value: object) -> T:
        try:
            return parse(value)
        except ValueError as error:
            raise self.error(name, str(error)) from None

    def url(self, name: str, *, trailing_slash: bool) -> str | None:
        """An http(s) URL; with *trailing_slash*, normalised to end in "/" so it works as a base."""
        value = self.string(name)
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise self.error(name, "has a bad port number") from None
        # The value itself is not echoed: a mistyped URL may still carry a secret.
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(name, "must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise self.error(
                name, "must not contain credentials (user:password@); use username/password or token"
            )
        if parts.query or parts.fragment:
            raise self.error(name, "must not have a query (?...) or fragment (#...)")
        return value if value.endswith("/") or not trailing_slash else value + "/"

    def path(self, name: str, default: Path) -> Path:
        value = self.string(name)
        return default if value is None else self.ctx.path(value)

    def strings(self, name: str) -> tuple[str, ...]:
        values = self._get(name, (list,), "an array of strings") or []
        for index, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise self.item_error(name, index, f"expected a non-empty string, got {_type_name(value)}")
        return tuple(values)

    def paths(self, name: str) -> tuple[Path, ...]:
        return tuple(self.ctx.path(value) for value in self.strings(name))

    def table(self, name: str) -> _Table:
        """The sub-table *name* (empty when absent)."""
        value = self._get(name, (dict,), "a table")
        return _Table(self.ctx, self.key_of(name), {} if value is None else value, name)

    def tables(self, name: str) -> list[_Table]:
        """The tables ``[name.X]`` in file order, e.g. every ``[repository.X]``."""
        parent = self.table(name)
        children = [parent.table(child) for child in parent._data]
        for child in children:
            if not child.name:
                raise child.fail("a table name must not be empty")
        return children

    def finish(self) -> None:
        """Refuse keys that no validator read: they are typos or keys of another table."""
        for name in self._data:
            if name not in self._known:
                raise self.error(name, _unknown("key", name, self._known))


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    choices = list(known)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {what} '{name}' ({hint}known: {', '.join(choices) or 'none'})"


def _join(prefix: str, name: str) -> str:
    """A dotted key as TOML would write it: names that are not bare keys are quoted."""
    part = name if _BARE_KEY.fullmatch(name) else json.dumps(name)
    return f"{prefix}.{part}" if prefix else part


def _type_name(value: object) -> str:
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _by_name(items: Iterable[N]) -> Mapping[str, N]:
    return MappingProxyType({item.name: item for item in items})


def _syntax_error(source: str, error: tomllib.TOMLDecodeError) -> ConfigError:
    match = _TOML_POSITION.fullmatch(str(error))
    if match is None:
        return ConfigError(source, "", f"TOML syntax error: {error}")
    return ConfigError(source, match["where"], f"TOML syntax error: {match['reason']}")


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    return Path(home) if home else Path.home()


def _expand_user(text: str, environ: Mapping[str, str]) -> Path:
    if text == "~" or text.startswith("~/"):
        return _home(environ) / text[2:]
    return Path(os.path.expanduser(text))  # "~user/..." and plain paths


def _xdg_dir(environ: Mapping[str, str], variable: str, fallback: str) -> Path:
    value = environ.get(variable, "")
    # The XDG spec says relative values are invalid and must be ignored.
    return Path(value) if os.path.isabs(value) else _home(environ) / fallback


def _plain(value: object) -> Any:
    """*value* as JSON-ready data, with secrets masked."""
    if isinstance(value, Credentials):
        shown = {
            "username": value.username,
            "password": "***" if value.password else None,
            "token": "***" if value.token else None,
        }
        return shown | ({"token_file": str(value.token_file)} if value.token_file else {})
    if isinstance(value, PrincipalConfig):
        return {
            "access_key_id": value.access_key_id,
            "secret_access_key_file": str(value.secret_access_key_file),
            "admin": value.admin,
        }
    if isinstance(value, Listen | Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value
