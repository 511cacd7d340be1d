"""The repository registry on a real store: changes, their checks, persistence over a reopen, the
config file's repositories, and the chain that follows the registry. Also the config keys it reads
([domain], external_connection, allow_writes)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config
from proxy.config.model import Config
from proxy.formats.registry import format_names
from proxy.repository.chain import ResolutionChain
from proxy.repository.registry import (
    ConfigDefined,
    InUse,
    InvalidUpstreams,
    RepositoryExists,
    RepositoryNotFound,
    RepositoryRegistry,
)
from proxy.store.repositories import RepositoryEntries
from proxy.store.store import Store
from tests.fakes.daemon import write_config

UPSTREAMS = """
[upstream.public]
format = "npm"
url = "http://127.0.0.1:9/"
external_connection = "public:npmjs"

[upstream.other]
format = "pypi"
url = "http://127.0.0.1:9/simple/"
"""


def config_of(tmp_path: Path, body: str) -> Config:
    return load_config(write_config(tmp_path, body), {"HOME": str(tmp_path)}, formats=format_names())


class Opened:
    """A store and a registry over it, reopened as a restart would."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.closed = False
        self.store = Store.open(config.cache)
        self.registry = RepositoryRegistry(
            config, RepositoryEntries(self.store.catalog.index, self.store.keyring)
        )

    def close(self) -> None:
        if not self.closed:
            self.store.close()
            self.closed = True


@pytest.fixture
def opened(tmp_path: Path):  # type: ignore[no-untyped-def]
    handles: list[Opened] = []

    def open_(body: str = UPSTREAMS + "[repository.base]\npublish = true\n") -> Opened:
        for handle in handles:
            handle.close()
        handles.clear()
        handles.append(Opened(config_of(tmp_path, body)))
        return handles[0]

    yield open_
    for handle in handles:
        handle.close()


async def test_changes_survive_a_reopen(opened) -> None:  # type: ignore[no-untyped-def]
    first = opened()
    created = await first.registry.create("team", "shared", ["base", "public"])
    assert created.publish and not created.config_defined and created.created_time > 0
    await first.registry.update("team", description="changed")
    await first.registry.create("gone")
    await first.registry.delete("gone")

    again = opened().registry
    assert [r.name for r in again.list()] == ["base", "team"]
    team = again["team"]
    assert (team.description, team.upstreams, team.created_time) == (
        "changed",
        ("base", "public"),
        created.created_time,
    )
    assert again["base"].config_defined and again["base"].publish
    assert "gone" not in again


async def test_the_store_holds_no_readable_names(opened, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handle = opened()
    await handle.registry.create("secret-team-name", "a description nobody reads")
    handle.close()
    index = (tmp_path / "cache" / "index" / "catalog" / "entries.sqlite").read_bytes()
    assert b"secret-team-name" not in index and b"nobody reads" not in index


async def test_refusals(opened) -> None:  # type: ignore[no-untyped-def]
    registry = opened().registry
    await registry.create("a1")
    await registry.create("b1", upstreams=["a1"])
    with pytest.raises(RepositoryExists):
        await registry.create("a1")
    with pytest.raises(RepositoryExists, match=r"\[upstream.public\]"):
        await registry.create("public")
    with pytest.raises(RepositoryNotFound):
        await registry.update("zz", description="x")
    with pytest.raises(ConfigDefined, match=r"configuration file .*config.toml.*\[repository.base\]"):
        await registry.update("base", description="x")
    with pytest.raises(ConfigDefined):
        await registry.delete("base")
    with pytest.raises(InvalidUpstreams, match="a1 -> b1 -> a1"):
        await registry.update("a1", upstreams=["b1"])
    with pytest.raises(InvalidUpstreams, match="own upstream"):
        await registry.update("a1", upstreams=["a1"])
    with pytest.raises(InvalidUpstreams, match="listed twice"):
        await registry.update("a1", upstreams=["base", "base"])
    with pytest.raises(InvalidUpstreams, match="nowhere"):
        await registry.update("a1", upstreams=["nowhere"])
    names = [f"r{n}" for n in range(11)]
    for name in names:
        await registry.create(name)
    with pytest.raises(InvalidUpstreams, match="at most 10"):
        await registry.update("a1", upstreams=names)
    await registry.update("a1", upstreams=names[:10])
    with pytest.raises(InUse, match="upstream of b1"):
        await registry.delete("a1")
    assert registry["a1"].upstreams == tuple(names[:10])  # a refused change changed nothing


async def test_the_config_file_wins_at_start(opened, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    first = opened(UPSTREAMS + "[repository.base]\n[repository.old]\n")
    await first.registry.create("api", upstreams=["old", "other"])
    await first.registry.create("later")
    # The file now drops "old", defines "later" itself (it becomes config-defined) and no longer has
    # [upstream.other].
    body = (
        UPSTREAMS.split("[upstream.other]")[0]
        + '[repository.base]\n[repository.later]\nupstreams = ["base"]\n'
    )
    with caplog.at_level(logging.WARNING):
        registry = opened(body).registry
    assert [r.name for r in registry.list()] == ["api", "base", "later"]
    assert registry["later"].config_defined and registry["later"].upstreams == ("base",)
    assert registry["api"].upstreams == () and "old, other" in caplog.text


async def test_the_chain_follows_the_registry(opened) -> None:  # type: ignore[no-untyped-def]
    handle = opened()
    upstreams = {name: object() for name in handle.config.upstreams}
    chain = ResolutionChain(handle.registry, upstreams)  # type: ignore[arg-type]
    await handle.registry.create("team", upstreams=["base"])
    assert [p.name for p in chain.places("team")] == ["team", "base"]
    await handle.registry.update("team", upstreams=["public", "base"])
    assert [p.name for p in chain.places("team")] == ["team", "public", "base"]
    assert chain.places("team")[1].upstream is upstreams["public"]
    changes: list[str] = []
    handle.registry.on_change(changes.append)
    await handle.registry.delete("team")
    assert changes == ["team"]


# -- the config keys -------------------------------------------------------------------------------
def test_domain_and_external_connection_keys(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        '[domain]\nname = "acme"\nowner = "123456789012"\n' + UPSTREAMS + "[repository.base]\n",
    )
    assert (config.domain.name, config.domain.owner) == ("acme", "123456789012")
    assert config.upstreams["public"].external_connection == "public:npmjs"  # type: ignore[union-attr]
    default = config_of(tmp_path, "[repository.base]\n")
    assert (default.domain.name, default.domain.owner) == ("local", "000000000000")


CONFIG_ERRORS = {
    "domain-name": ('[domain]\nname = "Bad_Name"\n', "domain.name", "2-50 characters"),
    "domain-owner": ('[domain]\nowner = "12"\n', "domain.owner", "12 digits"),
    "domain-key": ('[domain]\nnam = "x1"\n', "domain.nam", "did you mean 'name'?"),
    "unknown-connection": (
        '[upstream.u]\nformat = "npm"\nurl = "http://127.0.0.1:9/"\nexternal_connection = "public:npm"\n',
        "upstream.u.external_connection",
        "did you mean 'public:npmjs'?",
    ),
    "wrong-format": (
        '[upstream.u]\nformat = "pypi"\nurl = "http://127.0.0.1:9/"\nexternal_connection = "public:npmjs"\n',
        "upstream.u.external_connection",
        "npm external connection, but this upstream's format is pypi",
    ),
    "twice": (
        UPSTREAMS
        + '[upstream.u]\nformat = "npm"\nurl = "http://127.0.0.1:9/"\nexternal_connection = "public:npmjs"\n',
        "upstream.u.external_connection",
        "already the external connection of [upstream.public]",
    ),
    "fronted-is-own": (
        '[codeartifact.c]\ndomain = "local"\ndomain_owner = "111122223333"\nregion = "eu-west-1"\n',
        "codeartifact.c.domain",
        "also the proxy's own domain",
    ),
    "allow-writes": (
        '[codeartifact.c]\ndomain = "corp"\ndomain_owner = "111122223333"\nregion = "eu-west-1"\n'
        'allow_writes = "yes"\n',
        "codeartifact.c.allow_writes",
        "expected true or false",
    ),
}


@pytest.mark.parametrize(("body", "key", "reason"), CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_config_errors_name_the_key(tmp_path: Path, body: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_of(tmp_path, body + "[repository.base]\n")
    assert caught.value.key == key and reason in caught.value.reason
    assert caught.value.file.endswith("config.toml")
