"""Tests of proxy.config: size/duration units, the TOML loader and its errors, defaults, redaction."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config import (
    ENV_VAR,
    CodeArtifactUpstream,
    Config,
    ConfigError,
    Credentials,
    Listen,
    RegistryUpstream,
    embedded_default,
    load_config,
    redacted,
    resolve_config_path,
)
from proxy.config.units import parse_duration, parse_size
from proxy.formats.registry import format_names

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"

SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

FORMAT_NAMES = format_names()


# --- units ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20GiB", 20 * 1024**3),
        ("500MB", 500_000_000),
        ("1.5GiB", 1024**3 + 512 * 1024**2),
        ("512", 512),
        (512, 512),
        ("0", 0),
        ("1 kib", 1024),
        (" 2TB ", 2 * 1000**4),
    ],
)
def test_parse_size_examples(text, expected):
    assert parse_size(text) == expected


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(SIZE_UNITS)), st.booleans())
def test_parse_size_round_trips_number_and_unit(number, unit, spaced):
    text = f"{number}{' ' if spaced else ''}{unit}"
    assert parse_size(text) == number * SIZE_UNITS[unit]
    assert parse_size(text.lower()) == number * SIZE_UNITS[unit]


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["KiB", "MiB", "GiB", "TiB"]))
def test_parse_size_half_units_are_exact(number, unit):
    assert parse_size(f"{number}.5{unit}") == number * SIZE_UNITS[unit] + SIZE_UNITS[unit] // 2


@given(st.integers(min_value=0, max_value=2**62))
def test_parse_size_int_and_its_string_agree(number):
    assert parse_size(number) == parse_size(str(number)) == number


@pytest.mark.parametrize(
    "bad", ["", "   ", "-5", "-5GiB", -1, "5x", "GiB", "1e3", "1,000", "5 G", True, 1.5, None]
)
def test_parse_size_rejects_with_the_accepted_forms(bad):
    with pytest.raises(ValueError, match=r"KiB, MiB, GiB, TiB \(1024-based\)"):
        parse_size(bad)


def test_parse_size_says_why_for_empty_and_negative():
    with pytest.raises(ValueError, match="empty"):
        parse_size("")
    with pytest.raises(ValueError, match="negative"):
        parse_size("-1KB")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", 300.0),
        ("12h", 43200.0),
        ("30s", 30.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("90", 90.0),
        ("0", 0.0),
        (7, 7.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration_examples(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@given(
    st.dictionaries(
        st.sampled_from(sorted(DURATION_UNITS)), st.integers(min_value=0, max_value=10_000), min_size=1
    )
)
def test_parse_duration_sums_its_parts(parts):
    text = "".join(f"{count}{unit}" for unit, count in parts.items())
    expected = sum(count * DURATION_UNITS[unit] for unit, count in parts.items())
    assert parse_duration(text) == pytest.approx(expected)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_parse_duration_numbers_are_seconds(seconds):
    assert parse_duration(seconds) == seconds
    assert parse_duration(f"{seconds:.3f}") == pytest.approx(round(seconds, 3))


@pytest.mark.parametrize(
    "bad", ["", "-5m", "-1", -1, float("nan"), float("inf"), "5 minutes", "m5", "5x", "h", True, None]
)
def test_parse_duration_rejects_with_the_accepted_forms(bad):
    with pytest.raises(ValueError, match=r'"1h30m"'):
        parse_duration(bad)


# --- loading: helpers ----------------------------------------------------------------------------


def table(header: str, **keys: object) -> str:
    """A TOML table; JSON encodes strings, numbers, booleans and arrays the way TOML does."""
    body = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    return f"[{header}]\n{body}\n"


def domain(**overrides: object) -> str:
    keys = {"domain": "my-domain", "domain_owner": "111122223333", "region": "eu-west-1", **overrides}
    return table("codeartifact.corp", **{k: v for k, v in keys.items() if v is not None})


TEAM = table("upstream.team", codeartifact="corp", repository="team")
PUBLIC_NPM = table("upstream.public-npm", format="npm", url="https://registry.example.com/")
UPSTREAMS = domain() + TEAM + PUBLIC_NPM
DEV = table("repository.dev")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def environ(home: Path) -> dict[str, str]:
    return {"HOME": str(home)}


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "proxy.toml") -> Path:
        path = tmp_path / "etc" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write, environ):
    def load(text: str) -> Config:
        return load_config(write(text), environ, formats=FORMAT_NAMES)

    return load


# --- loading: every kind of error ----------------------------------------------------------------

ERRORS = {
    # unknown keys, in every table, with a suggestion when one is close
    "unknown-top-level": ('[servr]\nlisten = "127.0.0.1:1"\n' + DEV, "servr", "did you mean 'server'?"),
    "unknown-server": (table("server", listen_addr="127.0.0.1:1") + DEV, "server.listen_addr", "'listen'?"),
    "unknown-cache": (table("cache", max_sise="1GiB") + DEV, "cache.max_sise", "did you mean 'max_size'?"),
    "unknown-codeartifact": (domain(regoin="x") + DEV, "codeartifact.corp.regoin", "did you mean 'region'?"),
    "unknown-upstream-ca": (
        domain() + table("upstream.team", codeartifact="corp", repository="team", token="t") + DEV,
        "upstream.team.token",
        "unknown key 'token'",
    ),
    "unknown-upstream-url": (
        table("upstream.u", format="npm", url="https://registry.example.com/", pasword="x") + DEV,
        "upstream.u.pasword",
        "did you mean 'password'?",
    ),
    "unknown-repository": (table("repository.dev", publsh=True), "repository.dev.publsh", "'publish'?"),
    "unknown-quoted-name": (
        table('repository."my.repo"', bogus=1),
        'repository."my.repo".bogus',
        "unknown key 'bogus'",
    ),
    # wrong types
    "type-bool": (table("repository.dev", publish="yes"), "repository.dev.publish", "expected true or false"),
    "type-array": (
        UPSTREAMS + table("repository.dev", upstreams="team"),
        "repository.dev.upstreams",
        "array",
    ),
    "type-item": (table("repository.dev", upstreams=[1]), "repository.dev.upstreams[0]", "got an integer"),
    "type-string": (table("server", listen=5080) + DEV, "server.listen", "expected a string, got an integer"),
    "type-table": ("server = 5\n" + DEV, "server", "expected a table, got an integer"),
    "type-subtable": ("[repository]\ndev = 1\n", "repository.dev", "expected a table"),
    "type-owner-int": (domain(domain_owner=111122223333) + DEV, "codeartifact.corp.domain_owner", "a string"),
    "type-paths": (table("cache", old_key_files="old.key") + DEV, "cache.old_key_files", "array of strings"),
    "type-size": (table("cache", max_size=True) + DEV, "cache.max_size", "got a boolean"),
    "empty-string": (domain(profile="") + DEV, "codeartifact.corp.profile", "must not be empty"),
    # missing required keys
    "missing-domain": (domain(domain=None) + DEV, "codeartifact.corp.domain", "missing required key"),
    "missing-region": (domain(region=None) + DEV, "codeartifact.corp.region", "missing required key"),
    "missing-format": (
        table("upstream.u", url="https://registry.example.com/") + DEV,
        "upstream.u.format",
        "missing required key",
    ),
    "missing-repository": (
        domain() + table("upstream.team", codeartifact="corp") + DEV,
        "upstream.team.repository",
        "missing required key",
    ),
    # sizes and durations
    "bad-size": (table("cache", max_size="20 gigs") + DEV, "cache.max_size", "GiB"),
    "negative-size": (table("cache", max_size=-1) + DEV, "cache.max_size", "negative"),
    "zero-documents-memory": (
        table("cache", documents_memory=0) + DEV,
        "cache.documents_memory",
        "must be more than 0",
    ),
    "bad-documents-memory": (table("cache", documents_memory="lots") + DEV, "cache.documents_memory", "MiB"),
    "bad-duration": (table("cache", metadata_ttl="5 minutes") + DEV, "cache.metadata_ttl", '"1h30m"'),
    "negative-duration": (
        table("server", shutdown_timeout="-1s") + DEV,
        "server.shutdown_timeout",
        "negative",
    ),
    # upstream lists
    "unknown-upstream": (
        UPSTREAMS + table("repository.dev", upstreams=["team", "foo"]),
        "repository.dev.upstreams[1]",
        "unknown upstream 'foo' (known: team, public-npm)",
    ),
    "unknown-upstream-close": (
        UPSTREAMS + table("repository.dev", upstreams=["tem"]),
        "repository.dev.upstreams[0]",
        "did you mean 'team'?",
    ),
    "self-upstream": (
        table("repository.dev", upstreams=["dev"]),
        "repository.dev.upstreams[0]",
        "its own upstream",
    ),
    "loop-2": (
        table("repository.aa", upstreams=["bb"]) + table("repository.bb", upstreams=["aa"]),
        "repository.bb.upstreams[0]",
        "aa -> bb -> aa",
    ),
    "loop-3": (
        UPSTREAMS
        + table("repository.aa", upstreams=["team", "bb"])
        + table("repository.bb", upstreams=["cc"])
        + table("repository.cc", upstreams=["public-npm", "aa"]),
        "repository.cc.upstreams[1]",
        "aa -> bb -> cc -> aa",
    ),
    "loop-inner": (
        table("repository.aa", upstreams=["bb"])
        + table("repository.bb", upstreams=["cc"])
        + table("repository.cc", upstreams=["bb"]),
        "repository.cc.upstreams[0]",
        "loops: bb -> cc -> bb",
    ),
    "too-many-upstreams": (
        "".join(table(f"upstream.u{i}", format="npm", url="https://registry.example.com/") for i in range(11))
        + table("repository.dev", upstreams=[f"u{i}" for i in range(11)]),
        "repository.dev.upstreams",
        "at most 10",
    ),
    "duplicate-upstream": (
        UPSTREAMS + table("repository.dev", upstreams=["team", "public-npm", "team"]),
        "repository.dev.upstreams[2]",
        "'team' is already listed at [0]",
    ),
    "ambiguous-name": (UPSTREAMS + table("repository.team"), "repository.team", "both as [upstream.team]"),
    # CodeArtifact's naming rules
    "repo-name-short": (table("repository.x"), "repository.x", "2-100 characters"),
    "repo-name-start": (table("repository.-dev"), "repository.-dev", "starting with a letter or digit"),
    "repo-name-space": (table('repository."my dev"'), 'repository."my dev"', "breaks CodeArtifact's rules"),
    "repo-name-long": (table("repository." + "a" * 101), "repository." + "a" * 101, "2-100"),
    "upstream-repo-name": (
        domain() + table("upstream.team", codeartifact="corp", repository="t") + DEV,
        "upstream.team.repository",
        "2-100 characters",
    ),
    "domain-upper": (domain(domain="My-Domain") + DEV, "codeartifact.corp.domain", "2-50 characters"),
    "domain-short": (domain(domain="a") + DEV, "codeartifact.corp.domain", "2-50 characters"),
    "domain-digit-first": (
        domain(domain="1domain") + DEV,
        "codeartifact.corp.domain",
        "starting with a letter",
    ),
    "domain-dash-last": (
        domain(domain="my-") + DEV,
        "codeartifact.corp.domain",
        "ending with a letter or digit",
    ),
    "domain-long": (domain(domain="d" * 51) + DEV, "codeartifact.corp.domain", "2-50"),
    "owner-short": (domain(domain_owner="12345") + DEV, "codeartifact.corp.domain_owner", "12 digits"),
    "owner-letters": (
        domain(domain_owner="11112222333a") + DEV,
        "codeartifact.corp.domain_owner",
        "12 digits",
    ),
    "region": (domain(region="EU West 1") + DEV, "codeartifact.corp.region", "eu-west-1"),
    "duration-short": (domain(duration="10m") + DEV, "codeartifact.corp.duration", "900-43200"),
    "duration-long": (domain(duration="13h") + DEV, "codeartifact.corp.duration", "900-43200"),
    "duration-one": (domain(duration=1) + DEV, "codeartifact.corp.duration", "0 (the session's own)"),
    "endpoint-url": (domain(endpoint_url="vpce.example.com") + DEV, "codeartifact.corp.endpoint_url", "http"),
    # [upstream.X] shapes
    "upstream-both": (
        domain() + table("upstream.x", codeartifact="corp", url="https://registry.example.com/") + DEV,
        "upstream.x",
        "has both 'codeartifact' and 'url'",
    ),
    "upstream-neither": (table("upstream.x", format="npm") + DEV, "upstream.x", "has neither"),
    "upstream-no-domain": (
        domain() + table("upstream.team", codeartifact="corpp", repository="team") + DEV,
        "upstream.team.codeartifact",
        "unknown [codeartifact.*] table 'corpp' (did you mean 'corp'?",
    ),
    "upstream-format": (
        table("upstream.x", format="rubygems", url="https://registry.example.com/") + DEV,
        "upstream.x.format",
        "must be one of npm, pypi, maven",
    ),
    "upstream-ftp": (
        table("upstream.x", format="npm", url="ftp://registry.example.com/") + DEV,
        "upstream.x.url",
        "http:// or https://",
    ),
    "upstream-no-scheme": (
        table("upstream.x", format="npm", url="registry.example.com") + DEV,
        "upstream.x.url",
        "http:// or https://",
    ),
    "upstream-bad-port": (
        table("upstream.x", format="npm", url="https://registry.example.com:99999/") + DEV,
        "upstream.x.url",
        "port",
    ),
    "token-and-password": (
        table(
            "upstream.x",
            format="npm",
            url="https://registry.example.com/",
            username="u",
            password="p",
            token="t",
        )
        + DEV,
        "upstream.x",
        "either token or username/password, not both",
    ),
    "username-alone": (
        table("upstream.x", format="pypi", url="https://registry.example.com/", username="u") + DEV,
        "upstream.x.password",
        "username needs a password",
    ),
    "password-alone": (
        table("upstream.x", format="pypi", url="https://registry.example.com/", password="p") + DEV,
        "upstream.x.username",
        "password needs a username",
    ),
    # [server]
    "listen-no-port": (table("server", listen="localhost") + DEV, "server.listen", "'host:port'"),
    "listen-bare-v6": (table("server", listen="::1:8080") + DEV, "server.listen", "'[v6 address]:port'"),
    "listen-bad-v6": (table("server", listen="[nothex]:8080") + DEV, "server.listen", "not an IPv6 address"),
    "listen-unix-empty": (table("server", listen="unix:") + DEV, "server.listen", "socket path"),
    "listen-port": (
        table("server", listen="127.0.0.1:70000") + DEV,
        "server.listen",
        "port 70000 is out of range",
    ),
    "public-url": (
        table("server", public_url="ftp://proxy.example.com/") + DEV,
        "server.public_url",
        "https://",
    ),
    "public-url-query": (
        table("server", public_url="https://proxy.example.com/?x=1") + DEV,
        "server.public_url",
        "query",
    ),
    "log-format": (table("server", log_format="xml") + DEV, "server.log_format", "must be one of text, json"),
    # the file as a whole
    "no-repository": (table("server", listen="127.0.0.1:5080"), "repository", "no [repository.NAME] table"),
    "empty-file": ("", "repository", "no [repository.NAME] table"),
    "toml-syntax": (
        '[server]\nlisten = "127.0.0.1:1"\n[server]\n' + DEV,
        "line 3, column 8",
        "TOML syntax error",
    ),
    "toml-unterminated": ("[repository.dev]\npublish = ", "end of document", "TOML syntax error"),
}


@pytest.mark.parametrize(("text", "key", "reason"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_the_file_the_key_and_the_reason(write, environ, text, key, reason):
    path = write(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ, formats=FORMAT_NAMES)
    error = caught.value
    assert (error.file, error.key) == (str(path), key)
    assert str(error).startswith(f"{path}: {key}: ")
    assert reason in error.reason


def test_unknown_upstream_message_is_exactly_as_documented(write, environ):
    path = write(UPSTREAMS + table("repository.dev", upstreams=["team", "foo"]))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ, formats=FORMAT_NAMES)
    assert (
        str(caught.value)
        == f"{path}: repository.dev.upstreams[1]: unknown upstream 'foo' (known: team, public-npm)"
    )


def test_secrets_never_appear_in_errors(write, environ):
    cases = [
        table("upstream.x", format="npm", url="https://reader:s3cret@registry.example.com/") + DEV,
        table("upstream.x", format="npm", url="https://registry.example.com/", token="s3cret", username="u")
        + DEV,
        table("upstream.x", format="npm", url="https://registry.example.com/", password="s3cret") + DEV,
        table("upstream.x", format="npm", url="https://registry.example.com/", pasword="s3cret") + DEV,
    ]
    for text in cases:
        with pytest.raises(ConfigError) as caught:
            load_config(write(text), environ, formats=FORMAT_NAMES)
        assert "upstream.x" in str(caught.value)
        assert "s3cret" not in str(caught.value)
        assert "s3cret" not in repr(caught.value.args)


def test_a_named_file_that_does_not_exist_is_an_error_not_the_default(tmp_path, environ):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, environ, formats=FORMAT_NAMES)
    assert str(caught.value) == f"{missing}: cannot read the configuration file: No such file or directory"
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(None, {**environ, ENV_VAR: str(missing)}, formats=FORMAT_NAMES)


def test_a_file_that_is_not_utf8_is_an_error(write, environ):
    path = write("x")
    path.write_bytes(b"[repository.dev]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, environ, formats=FORMAT_NAMES)


def test_config_error_without_a_key_has_two_parts():
    assert str(ConfigError("/etc/cap.toml", "", "no such file")) == "/etc/cap.toml: no such file"
    assert str(ConfigError("/etc/cap.toml", "server.listen", "bad")) == "/etc/cap.toml: server.listen: bad"


# --- loading: valid files ------------------------------------------------------------------------

FULL = (
    table(
        "server",
        listen="[::1]:8080",
        public_url="https://proxy.example.com/base",
        log_format="json",
        shutdown_timeout="1m",
    )
    + table(
        "cache",
        path="cache",
        max_size="1.5GiB",
        metadata_ttl=90,
        key_file="~/keys/cache.key",
        old_key_files=["old/1.key", "/abs/2.key"],
    )
    + domain(profile="dev", duration="15m", endpoint_url="http://127.0.0.1:9/")
    + TEAM
    + table(
        "upstream.private",
        format="maven",
        url="https://registry.example.com/maven2",
        username="reader",
        password="s3cret",
    )
    + table("upstream.tokened", format="pypi", url="https://registry.example.com/simple/", token="t0ken")
    + table("repository.zeta", upstreams=["team", "private"], publish=True)
    + table("repository.alpha", upstreams=["zeta", "tokened"])
)


def test_a_full_file_resolves_every_key(load, write, home):
    config = load(FULL)
    folder = write("").parent
    assert config.source == str(write("").absolute())
    assert config.server.listen == Listen(host="::1", port=8080)
    assert str(config.server.listen) == "[::1]:8080"
    assert config.server.public_url == "https://proxy.example.com/base/"
    assert (config.server.log_format, config.server.shutdown_timeout) == ("json", 60.0)
    assert config.cache.path == folder / "cache"
    assert config.cache.key_file == home / "keys" / "cache.key"
    assert config.cache.old_key_files == (folder / "old" / "1.key", Path("/abs/2.key"))
    assert (config.cache.max_size, config.cache.metadata_ttl) == (1536 * 1024**2, 90.0)
    corp = config.codeartifact["corp"]
    assert (corp.domain, corp.domain_owner, corp.region, corp.profile) == (
        "my-domain",
        "111122223333",
        "eu-west-1",
        "dev",
    )
    assert (corp.duration, corp.endpoint_url) == (900.0, "http://127.0.0.1:9/")
    assert config.upstreams["team"] == CodeArtifactUpstream("team", "corp", "team")
    private = config.upstreams["private"]
    assert isinstance(private, RegistryUpstream)
    assert private.url == "https://registry.example.com/maven2/"
    assert private.credentials == Credentials(username="reader", password="s3cret")
    assert config.upstreams["tokened"].credentials.token == "t0ken"
    assert config.repositories["zeta"].upstreams == ("team", "private")
    assert config.repositories["zeta"].publish is True
    assert config.repositories["alpha"].publish is False


def test_mappings_are_read_only_and_in_file_order(load):
    config = load(FULL)
    for mapping in (config.codeartifact, config.upstreams, config.repositories):
        assert isinstance(mapping, MappingProxyType)
    assert list(config.repositories) == ["zeta", "alpha"]
    assert list(config.upstreams) == ["team", "private", "tokened"]
    with pytest.raises(TypeError):
        config.repositories["new"] = config.repositories["zeta"]  # type: ignore[index]


def test_defaults_fill_what_a_file_leaves_out(load, home):
    config = load(DEV)
    assert config.server.listen == Listen("127.0.0.1", 5080)
    assert config.server.public_url is None
    assert (config.server.log_format, config.server.shutdown_timeout) == ("text", 30.0)
    assert config.cache.path == home / ".cache" / "codeartifact-proxy"
    assert (config.cache.max_size, config.cache.metadata_ttl) == (20 * 1024**3, 300.0)
    assert config.repositories["dev"].upstreams == ()
    assert config.repositories["dev"].publish is False


@pytest.mark.parametrize("duration", ["0", 0, 900, "15m", "12h", "1h30m"])
def test_token_durations_within_codeartifact_limits_are_accepted(load, duration):
    assert load(domain(duration=duration) + DEV).codeartifact["corp"].duration == parse_duration(duration)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:0", Listen("0.0.0.0", 0)),
        ("localhost:65535", Listen("localhost", 65535)),
        ("[::]:5080", Listen("::", 5080)),
    ],
)
def test_listen_host_port_forms(load, listen, expected):
    # A non-loopback listener needs an [auth] table (see tests/test_auth_config.py).
    assert (
        load(table("server", listen=listen) + '[auth]\nanonymous = "none"\n' + DEV).server.listen == expected
    )


def test_listen_unix_socket_paths_resolve_like_other_paths(load, write, home):
    relative = load(table("server", listen="unix:run/proxy.sock") + DEV).server.listen
    assert relative == Listen(host=None, port=None, unix_path=write("").parent / "run" / "proxy.sock")
    assert str(relative) == f"unix:{write('').parent / 'run' / 'proxy.sock'}"
    homed = load(table("server", listen="unix:~/proxy.sock") + DEV).server.listen
    assert homed.unix_path == home / "proxy.sock"


def test_chains_through_repositories_without_a_loop_are_accepted(load):
    config = load(
        table("repository.aa", upstreams=["bb", "cc"])
        + table("repository.bb", upstreams=["cc"])
        + table("repository.cc")
    )
    assert config.repositories["aa"].upstreams == ("bb", "cc")


def test_ten_upstreams_are_allowed(load):
    upstreams = "".join(
        table(f"upstream.u{i}", format="npm", url="https://registry.example.com/") for i in range(10)
    )
    config = load(upstreams + table("repository.dev", upstreams=[f"u{i}" for i in range(10)]))
    assert len(config.repositories["dev"].upstreams) == 10


# --- the embedded default and which file is read -------------------------------------------------


def test_embedded_default(home):
    config = embedded_default({"HOME": str(home)})
    assert config.source == "<embedded default>"
    assert list(config.repositories) == ["local"]
    assert config.repositories["local"].publish is True
    assert config.repositories["local"].upstreams == ()
    assert (dict(config.upstreams), dict(config.codeartifact)) == ({}, {})
    assert str(config.server.listen) == "127.0.0.1:5080"
    assert config.cache.path == home / ".cache" / "codeartifact-proxy"
    assert config.cache.key_file == home / ".config" / "codeartifact-proxy" / "cache.key"


def test_embedded_default_follows_xdg_dirs_and_ignores_relative_ones(tmp_path, home):
    config = embedded_default(
        {"HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "xc"), "XDG_CONFIG_HOME": str(tmp_path / "xg")}
    )
    assert config.cache.path == tmp_path / "xc" / "codeartifact-proxy"
    assert config.cache.key_file == tmp_path / "xg" / "codeartifact-proxy" / "cache.key"
    relative = embedded_default({"HOME": str(home), "XDG_CACHE_HOME": "rel", "XDG_CONFIG_HOME": "rel"})
    assert relative.cache.path == home / ".cache" / "codeartifact-proxy"
    assert relative.cache.key_file == home / ".config" / "codeartifact-proxy" / "cache.key"


def test_path_selection_explicit_then_env_then_default(write, environ):
    explicit = write(table("repository.explicit"), "explicit.toml")
    from_env = write(table("repository.from-env"), "env.toml")
    with_env = {**environ, ENV_VAR: str(from_env)}
    assert list(load_config(explicit, with_env, formats=FORMAT_NAMES).repositories) == ["explicit"]
    assert list(load_config(str(explicit), with_env, formats=FORMAT_NAMES).repositories) == ["explicit"]
    assert list(load_config(None, with_env, formats=FORMAT_NAMES).repositories) == ["from-env"]
    assert list(load_config(None, environ, formats=FORMAT_NAMES).repositories) == ["local"]
    assert list(load_config(None, {**environ, ENV_VAR: ""}, formats=FORMAT_NAMES).repositories) == ["local"]


def test_resolve_config_path_expands_home(home):
    environ = {"HOME": str(home)}
    assert resolve_config_path("~/cap.toml", environ) == home / "cap.toml"
    assert resolve_config_path(None, {**environ, ENV_VAR: "~/env.toml"}) == home / "env.toml"
    assert resolve_config_path(None, environ) is None


# --- the example file ----------------------------------------------------------------------------


def test_example_file_loads(environ):
    config = load_config(EXAMPLE, environ, formats=FORMAT_NAMES)
    assert config.source == str(EXAMPLE)
    assert "dev" in config.repositories
    assert config.codeartifact["corp"].domain_owner == "111122223333"


def test_example_file_documents_every_key():
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = {
        "listen",
        "public_url",
        "log_format",
        "shutdown_timeout",
        "path",
        "max_size",
        "metadata_ttl",
        "key_file",
        "old_key_files",
        "domain",
        "domain_owner",
        "region",
        "profile",
        "duration",
        "endpoint_url",
        "codeartifact",
        "repository",
        "format",
        "url",
        "username",
        "password",
        "token",
        "upstreams",
        "publish",
        "name",
        "owner",
        "allow_writes",
        "external_connection",
        "tls_cert_file",
        "audit_log",
        "anonymous",
        "access_key_id",
        "admin",
    }
    lines = text.splitlines()
    for key in keys:
        index = next(i for i, line in enumerate(lines) if re.match(rf"#? ?{key} = ", line))
        # The line before a key (or the one after its table header) is a comment explaining it.
        assert lines[index - 1].startswith("#"), key


def test_example_file_uses_only_placeholder_hosts():
    hosts = re.findall(r"https?://([^/\"]+)", EXAMPLE.read_text(encoding="utf-8"))
    assert hosts
    assert all(host.endswith("example.com") for host in hosts), hosts


# --- redaction -----------------------------------------------------------------------------------


def test_redacted_hides_passwords_and_tokens_and_is_json(load):
    config = load(FULL)
    shown = redacted(config)
    text = json.dumps(shown)
    assert "s3cret" not in text
    assert "t0ken" not in text
    assert shown["upstream"]["private"]["credentials"] == {
        "username": "reader",
        "password": "***",
        "token": None,
    }
    assert shown["upstream"]["tokened"]["credentials"]["token"] == "***"
    assert shown["server"]["listen"] == "[::1]:8080"
    assert shown["cache"]["max_size"] == 1536 * 1024**2
    assert list(shown["repository"]) == ["zeta", "alpha"]
    assert shown["source"] == config.source


def test_credentials_repr_hides_secrets(load):
    credentials = load(FULL).upstreams["private"].credentials
    assert "s3cret" not in repr(credentials)
    assert "reader" not in repr(credentials)


def test_documents_memory_is_a_size_with_a_default(load):
    assert load(DEV).cache.documents_memory == 16 * 1024**2
    assert load(table("cache", documents_memory="96MiB") + DEV).cache.documents_memory == 96 * 1024**2
