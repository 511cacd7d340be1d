"""The text edits ``login`` makes to the clients' files, the token request, and logout's undo."""

from __future__ import annotations

import configparser
import json
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from defusedxml import ElementTree
from hypothesis import given
from hypothesis import strategies as st

from proxy.client import credentials, edits, logins
from proxy.client.credentials import CredentialsError, fetch_token

URL = "http://127.0.0.1:5080/"


def test_npmrc_replaces_the_registry_and_keeps_the_rest() -> None:
    text = "; comment\nregistry = https://registry.example.com/\nfund=false\nregistry=https://other.example.com/\n"
    out = edits.npmrc(text, f"{URL}npm/dev/", "tok")
    assert out == (
        "; comment\nregistry=http://127.0.0.1:5080/npm/dev/\nfund=false\n"
        "//127.0.0.1:5080/npm/dev/:_authToken=tok\n"
    )
    assert edits.npmrc(out, f"{URL}npm/dev/", "tok") == out


def test_yarnrc_yml_sets_registry_token_and_http_host_and_keeps_the_rest() -> None:
    text = (
        "# mine\nnodeLinker: node-modules\nunsafeHttpWhitelist:\n  - '*.corp.example.com'\n"
        "npmRegistryServer: https://registry.example.com\nnpmScopes:\n  corp:\n    npmAlwaysAuth: false\n"
    )
    out = edits.yarnrc_yml(text, f"{URL}npm/dev/", "tok")
    assert out.startswith("# mine\nnodeLinker: node-modules\nnpmScopes:\n  corp:\n    npmAlwaysAuth: false\n")
    assert yaml.safe_load(out) == {
        "nodeLinker": "node-modules",
        "npmScopes": {"corp": {"npmAlwaysAuth": False}},
        "npmRegistryServer": "http://127.0.0.1:5080/npm/dev/",
        "npmAuthToken": "tok",
        "npmAlwaysAuth": True,
        "unsafeHttpWhitelist": ["*.corp.example.com", "127.0.0.1"],
    }
    assert edits.yarnrc_yml(out, f"{URL}npm/dev/", "tok") == out
    https = yaml.safe_load(edits.yarnrc_yml(None, "https://proxy.example.com/npm/dev/", "tok"))
    assert "unsafeHttpWhitelist" not in https  # only plain http needs it
    for bad in ("a: [1\n", "- a list\n"):
        with pytest.raises(edits.EditError, match=r"\.yarnrc\.yml"):
            edits.yarnrc_yml(bad, f"{URL}npm/dev/", "tok")


def test_pip_conf_replaces_index_url_and_its_continuation_lines() -> None:
    text = (
        "[global]\ntimeout = 60\nindex_url =\n    https://a.example.com/simple/\n# end\n\n"
        "[install]\nuser = false\n"
    )
    out = edits.pip_conf(text, f"{URL}pypi/dev/simple/")
    parser = configparser.RawConfigParser()
    parser.read_string(out)
    assert parser.get("global", "index-url") == f"{URL}pypi/dev/simple/"
    assert "index_url" not in parser["global"] and parser.get("global", "timeout") == "60"
    assert parser.get("install", "user") == "false" and "# end" in out
    assert edits.pip_conf(out, f"{URL}pypi/dev/simple/") == out


def test_pypirc_adds_codeartifact_to_index_servers() -> None:
    text = "[distutils]\nindex-servers =\n    pypi\n    internal\n\n[internal]\nrepository = https://i.example.com/\n"
    out = edits.pypirc(text, f"{URL}pypi/dev/", "aws", "tok")
    parser = configparser.RawConfigParser()
    parser.read_string(out)
    assert parser.get("distutils", "index-servers").split() == ["pypi", "internal", "codeartifact"]
    assert dict(parser["codeartifact"]) == {
        "repository": f"{URL}pypi/dev/",
        "username": "aws",
        "password": "tok",
    }
    assert parser.get("internal", "repository") == "https://i.example.com/"
    assert edits.pypirc(out, f"{URL}pypi/dev/", "aws", "tok") == out


def test_uv_toml_appends_one_default_index() -> None:
    text = "native-tls = true\n\n[pip]\nno-build = true\n"
    out = edits.uv_toml(text, f"{URL}pypi/dev/simple/")
    data = tomllib.loads(out)
    assert data["native-tls"] is True and data["pip"] == {"no-build": True}
    assert data["index"] == [{"name": "codeartifact-proxy", "url": f"{URL}pypi/dev/simple/", "default": True}]
    assert edits.uv_toml(out, f"{URL}pypi/dev/simple/") == out
    with pytest.raises(edits.EditError, match="not valid TOML"):
        edits.uv_toml("a = ", URL)


MAVEN_DEFAULT = """<?xml version="1.0" encoding="UTF-8"?>
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <!-- <mirrors> in a comment is not the element
  <servers><server><id>x</id></server></servers> -->
  <mirrors>
    <mirror><id>corp</id><mirrorOf>*</mirrorOf><url>https://corp.example.com/</url></mirror>
  </mirrors>
  <profiles></profiles>
</settings>
"""


def test_maven_settings_puts_its_mirror_first_and_keeps_the_rest() -> None:
    out = edits.maven_settings(MAVEN_DEFAULT, f"{URL}maven/dev/", "aws", "t<k")
    ns = {"s": "http://maven.apache.org/SETTINGS/1.0.0"}
    root = ElementTree.fromstring(out.encode())
    assert [m.findtext("s:id", namespaces=ns) for m in root.iterfind("s:mirrors/s:mirror", ns)] == [
        "codeartifact-proxy",
        "corp",
    ]
    assert root.findtext("s:servers/s:server/s:password", namespaces=ns) == "t<k"
    profile = root.find("s:profiles/s:profile", ns)
    assert profile.findtext("s:repositories/s:repository/s:snapshots/s:enabled", namespaces=ns) == "true"
    assert root.findtext("s:activeProfiles/s:activeProfile", namespaces=ns) == "codeartifact-proxy"
    assert "<!-- <mirrors> in a comment is not the element" in out
    assert edits.maven_settings(out, f"{URL}maven/dev/", "aws", "t<k") == out


def test_bad_maven_settings_is_refused() -> None:
    with pytest.raises(edits.EditError, match="not well-formed"):
        edits.maven_settings("<settings><mirrors></settings>", URL, "a", "b")
    with pytest.raises(edits.EditError, match="not <settings>"):
        edits.maven_settings("<project/>", URL, "a", "b")


@given(st.lists(st.sampled_from(["[global]", "[other]", "a = 1", "  cont", "# c", "", "index-url = x"])))
def test_ini_set_always_leaves_one_value(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    try:
        configparser.RawConfigParser().read_string(text)
    except configparser.Error:
        return
    out = edits.ini_set(text, "global", {"index-url": "y"})
    parser = configparser.RawConfigParser()
    parser.read_string(out)
    assert parser.get("global", "index-url") == "y"
    assert edits.ini_set(out, "global", {"index-url": "y"}) == out


def test_logout_keeps_changes_made_after_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / ".npmrc"
    path.write_bytes(b"fund=false\r\n")
    backup = logins.record_and_write(path, b"registry=x\n", "npm")
    assert backup is not None and backup.read_bytes() == b"fund=false\r\n"
    logins.record_and_write(path, b"registry=y\n", "pnpm")  # the backup is written once
    assert backup.read_bytes() == b"fund=false\r\n"
    path.write_bytes(b"registry=y\nmine=1\n")
    done = logins.undo(path)
    assert done is not None and done.kept_changes is not None
    assert done.kept_changes.read_bytes() == b"registry=y\nmine=1\n"
    assert path.read_bytes() == b"fund=false\r\n" and not backup.exists()
    assert logins.undo(path) is None
    assert not logins.state_file().exists()


class _TokenHandler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []
    status = 200

    def do_POST(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        body = json.dumps({"authorizationToken": "issued", "expiration": 1}).encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_token_is_asked_for_with_sigv4(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert fetch_token(base, "local", "000000000000") == "issued"
        path, authorization = _TokenHandler.seen[-1]
        assert path == "/v1/authorization-token?domain=local&domain-owner=000000000000"
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/us-east-1/codeartifact/aws4_request" in authorization
        _TokenHandler.status = 403
        with pytest.raises(CredentialsError, match="HTTP 403") as refused:
            fetch_token(base, "local", "000000000000")
        assert "issued" not in str(refused.value)
    finally:
        _TokenHandler.status = 200
        server.shutdown()
        server.server_close()


def test_a_linked_dotfile_stays_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "dotfiles").mkdir()
    target = tmp_path / "dotfiles" / "npmrc"
    target.write_bytes(b"fund=false\n")
    link = tmp_path / ".npmrc"
    link.symlink_to(target)
    logins.record_and_write(link, b"registry=x\n", "npm")
    assert link.is_symlink() and target.read_bytes() == b"registry=x\n"
    logins.undo(link)
    assert link.is_symlink() and target.read_bytes() == b"fund=false\n"


def test_credentials_ask_the_daemon_only_when_it_requires_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        credentials,
        "fetch_token",
        lambda base, domain, owner, timeout: asked.append((base, domain, owner)) or "t",
    )
    anonymous = SimpleNamespace(auth=SimpleNamespace(anonymous="all"))
    assert credentials.credentials_for(anonymous, URL) == credentials.ClientCredentials(
        "aws", "anonymous", True
    )  # type: ignore[arg-type]
    assert credentials.credentials_for(SimpleNamespace(), URL).anonymous  # type: ignore[arg-type]
    assert not asked
    signed = SimpleNamespace(
        auth=SimpleNamespace(anonymous="read"), domain=SimpleNamespace(name="d", owner="1" * 12)
    )
    found = credentials.credentials_for(signed, URL)  # type: ignore[arg-type]
    assert found == credentials.ClientCredentials("aws", "t", False) and "'t'" not in repr(found)
    assert asked == [(URL, "d", "1" * 12)]
