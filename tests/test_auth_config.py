"""[auth], [principal.NAME] and the [server] TLS and audit keys: defaults and refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from proxy.config.loader import ConfigError, embedded_default, load_config, redacted
from proxy.formats.registry import format_names

REPOSITORY = "[repository.dev]\n"


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "proxy.toml"
    path.write_text(text + REPOSITORY)
    return load_config(path, {"HOME": str(tmp_path)}, formats=format_names())


def refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value


def secret(tmp_path: Path, name: str, mode: int = 0o600, value: str = "s3cr3t-value") -> Path:
    path = tmp_path / f"{name}.secret"
    path.write_text(value + "\n")
    os.chmod(path, mode)
    return path


def test_the_embedded_default_and_loopback_listeners_let_anyone_do_everything(tmp_path):
    assert embedded_default({"HOME": str(tmp_path)}).auth.anonymous == "all"
    for listen in ("127.0.0.1:5080", "[::1]:5080", "localhost:1", f"unix:{tmp_path}/s.sock"):
        assert load(tmp_path, f'[server]\nlisten = "{listen}"\n').auth.anonymous == "all"


@pytest.mark.parametrize("listen", ["0.0.0.0:5080", "[::]:5080", "build.example.com:5080", "10.1.2.3:80"])
def test_a_network_listener_without_auth_is_refused_saying_what_to_add(tmp_path, listen):
    error = refused(tmp_path, f'[server]\nlisten = "{listen}"\n')
    assert error.key == "auth"
    assert 'add [auth] with anonymous = "none"' in str(error) and "\n" not in str(error)


def test_anonymous_all_is_refused_on_a_network_listener_but_none_and_read_are_taken(tmp_path):
    error = refused(tmp_path, '[server]\nlisten = "0.0.0.0:1"\n[auth]\nanonymous = "all"\n')
    assert error.key == "auth.anonymous"
    for mode in ("none", "read"):
        config = load(tmp_path, f'[server]\nlisten = "0.0.0.0:1"\n[auth]\nanonymous = "{mode}"\n')
        assert config.auth.anonymous == mode
    assert refused(tmp_path, '[auth]\nanonymous = "some"\n').key == "auth.anonymous"
    assert refused(tmp_path, '[auth]\nanonymus = "none"\n').key == "auth.anonymus"


def test_a_principal_reads_its_secret_and_check_config_never_shows_it(tmp_path):
    path = secret(tmp_path, "ci")
    text = f'[principal.ci]\naccess_key_id = "AKIDCI"\nsecret_access_key_file = "{path}"\nadmin = true\n'
    config = load(tmp_path, text)
    ci = config.principals["ci"]
    assert (ci.access_key_id, ci.secret_access_key, ci.admin) == ("AKIDCI", "s3cr3t-value", True)
    assert "s3cr3t" not in repr(config)
    shown = json.dumps(redacted(config))
    assert "s3cr3t" not in shown and "AKIDCI" in shown


def test_a_secret_file_others_may_read_is_refused_naming_file_key_and_fix(tmp_path):
    path = secret(tmp_path, "ci", mode=0o640)
    error = refused(
        tmp_path, f'[principal.ci]\naccess_key_id = "AKIDCI"\nsecret_access_key_file = "{path}"\n'
    )
    assert error.key == "principal.ci.secret_access_key_file"
    assert f"chmod 600 {path}" in error.reason
    missing = refused(tmp_path, '[principal.ci]\naccess_key_id = "AKIDCI"\n')
    assert missing.key == "principal.ci.secret_access_key_file"
    absent = refused(
        tmp_path, f'[principal.ci]\naccess_key_id = "AKIDCI"\nsecret_access_key_file = "{tmp_path}/no"\n'
    )
    assert "cannot open" in absent.reason


def test_two_principals_with_one_access_key_are_refused(tmp_path):
    a, b = secret(tmp_path, "a"), secret(tmp_path, "b")
    text = (
        f'[principal.a]\naccess_key_id = "AKIDSAME"\nsecret_access_key_file = "{a}"\n'
        f'[principal.b]\naccess_key_id = "AKIDSAME"\nsecret_access_key_file = "{b}"\n'
    )
    error = refused(tmp_path, text)
    assert error.key == "principal.b.access_key_id" and "[principal.a]" in error.reason


def test_tls_needs_both_files_and_the_audit_log_path_is_resolved(tmp_path):
    error = refused(tmp_path, '[server]\ntls_cert_file = "tls.crt"\n')
    assert error.key == "server.tls_key_file"
    config = load(
        tmp_path, '[server]\ntls_cert_file = "a.crt"\ntls_key_file = "a.key"\naudit_log = "audit.jsonl"\n'
    )
    assert config.server.tls_cert_file == tmp_path / "a.crt"
    assert config.server.audit_log == tmp_path / "audit.jsonl"
    assert load(tmp_path, "").server.audit_log is None


def test_serve_refuses_an_unreadable_policy_file_or_audit_log_in_one_line(tmp_path):
    from tests.fakes.daemon import run_command, write_config

    config = write_config(tmp_path, "[repository.dev]\n")
    config.write_text(
        config.read_text().replace("[cache]", f'audit_log = "{tmp_path}/no/such/dir/a"\n[cache]', 1)
    )
    (tmp_path / "no").write_text("a file, not a folder")
    result = run_command(config, "serve", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        f"server.audit_log: cannot open {tmp_path}/no/such/dir/a for appending: Not a directory"
    )
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    config.write_text(config.read_text().replace(f'audit_log = "{tmp_path}/no/such/dir/a"\n', ""))
    policies = tmp_path / "cache" / "auth" / "policies"
    policies.parent.mkdir(parents=True)
    policies.write_bytes(b"not sealed")
    result = run_command(config, "serve", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{policies}: cannot be opened" in result.stderr and "remove it" in result.stderr
