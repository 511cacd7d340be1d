"""Principals: who a request is. A principal of the configuration signs /v1 requests with its keys and
holds tokens; ``ANONYMOUS`` is whoever sent no valid credentials.

The proxy is one CodeArtifact domain (``[domain] name``/``owner``, read here defensively so this module
works before and after that table exists); ARNs are built on its account id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.config.model import Config

DEFAULT_DOMAIN = "local"
DEFAULT_OWNER = "000000000000"
ANONYMOUS_NAME = "anonymous"


@dataclass(frozen=True)
class Principal:
    """A caller. ``secret_access_key`` is empty for ``ANONYMOUS``; it never appears in a repr."""

    name: str
    arn: str
    admin: bool = False
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)

    @property
    def anonymous(self) -> bool:
        return not self.access_key_id


@dataclass(frozen=True)
class Domain:
    """The proxy's own CodeArtifact domain: its name and owner account."""

    name: str
    owner: str

    def arn(self) -> str:
        return f"arn:aws:codeartifact:{REGION}:{self.owner}:domain/{self.name}"

    def repository_arn(self, repository: str) -> str:
        return f"arn:aws:codeartifact:{REGION}:{self.owner}:repository/{self.name}/{repository}"

    def contents(self) -> tuple[str, ...]:
        """ARN patterns of everything in the domain: itself, its repositories and their packages."""
        base = f"arn:aws:codeartifact:{REGION}:{self.owner}"
        return (self.arn(), f"{base}:repository/{self.name}/*", f"{base}:package/{self.name}/*")

    def repository_contents(self, repository: str) -> tuple[str, ...]:
        """ARN patterns of a repository and its packages."""
        base = f"arn:aws:codeartifact:{REGION}:{self.owner}"
        return (self.repository_arn(repository), f"{base}:package/{self.name}/{repository}/*")

    def user_arn(self, user: str) -> str:
        return f"arn:aws:iam::{self.owner}:user/{user}"


# The proxy has no region of its own; policy Resource patterns match ARNs whatever region they name.
REGION = "local"


def domain_of(config: Config) -> Domain:
    """The ``[domain]`` table when the configuration has one, else the defaults."""
    table = getattr(config, "domain", None)
    return Domain(
        getattr(table, "name", None) or DEFAULT_DOMAIN, getattr(table, "owner", None) or DEFAULT_OWNER
    )


class Principals:
    """The configured principals, by access key id. Immutable; safe to share."""

    def __init__(self, config: Config) -> None:
        self.domain = domain_of(config)
        self.anonymous = Principal(ANONYMOUS_NAME, f"arn:aws:iam::{self.domain.owner}:anonymous")
        self._by_key = {
            p.access_key_id: Principal(
                p.name, self.domain.user_arn(p.name), p.admin, p.access_key_id, p.secret_access_key
            )
            for p in config.principals.values()
        }
        self._by_name = {p.name: p for p in self._by_key.values()}

    def by_access_key(self, access_key_id: str) -> Principal | None:
        return self._by_key.get(access_key_id)

    def by_name(self, name: str) -> Principal | None:
        return self._by_name.get(name)
