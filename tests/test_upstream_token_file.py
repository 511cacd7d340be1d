"""``token_file`` of a plain URL upstream (a proxy token of a farm daemon, refreshed outside): checked
at start like every secret file, read again when the file changes, a broken rewrite keeps the token
read before; check-config names the file, never the token."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config, redacted
from proxy.formats.registry import format_names
from proxy.upstream.registry import RegistryUpstream


def bearer(user: str, token: str) -> str:
    return f"Bearer {token}"


def config_text(tmp_path: Path, extra: str = "") -> str:
    return (
        '[upstream.farm]\nformat = "npm"\nurl = "https://farm.example.com/npm/dev/"\n'
        f'token_file = "{tmp_path / "farm.token"}"\n{extra}\n[repository.dev]\nupstreams = ["farm"]\n'
    )


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    return load_config(path, {"HOME": str(tmp_path)}, formats=format_names())


def token_file(tmp_path: Path, value: str, mode: int = 0o600) -> Path:
    path = tmp_path / "farm.token"
    path.write_text(value + "\n")
    os.chmod(path, mode)
    return path


def test_a_token_file_is_read_at_start_and_check_config_names_only_the_file(tmp_path: Path) -> None:
    path = token_file(tmp_path, "cap1.first-token")
    config = load(tmp_path, config_text(tmp_path))
    credentials = config.upstreams["farm"].credentials
    assert (credentials.token, credentials.token_file) == ("cap1.first-token", path)
    shown = json.dumps(redacted(config))
    assert "first-token" not in shown and "first-token" not in repr(config)
    assert str(path) in shown


@pytest.mark.parametrize(
    ("setup", "extra", "reason"),
    [
        ({"mode": 0o644}, "", "chmod 600"),
        ({"value": "two words"}, "", "must hold one token on one line"),
        (None, "", "cannot open"),
        ({}, 'token = "inline"', "either token or token_file"),
        ({}, 'username = "u"\npassword = "p"', "token_file gives a token"),
    ],
)
def test_a_bad_token_file_is_refused_naming_file_key_and_reason(
    tmp_path: Path, setup: dict[str, object] | None, extra: str, reason: str
) -> None:
    if setup is not None:
        token_file(tmp_path, str(setup.get("value", "cap1.token")), int(setup.get("mode", 0o600)))  # type: ignore[call-overload]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config_text(tmp_path, extra))
    assert reason in str(caught.value) and "upstream.farm" in str(caught.value)
    assert "proxy.toml" in str(caught.value)


def test_the_token_is_read_again_when_the_file_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = token_file(tmp_path, "cap1.first-token")
    credentials = load(tmp_path, config_text(tmp_path)).upstreams["farm"].credentials
    upstream = RegistryUpstream("farm", "npm", "https://farm.example.com/npm/dev/", credentials, None, bearer)  # type: ignore[arg-type]
    authorization = upstream._current_authorization()
    assert authorization is not None and authorization.value == "Bearer cap1.first-token"
    token_file(tmp_path, "cap1.second-token-longer")
    with caplog.at_level(logging.INFO):
        assert upstream._current_authorization().value == "Bearer cap1.second-token-longer"  # type: ignore[union-attr]
        # a rewrite that cannot be used keeps the token read before, and says why (never the token)
        os.chmod(path, 0o644)
        path.write_text("cap1.third\n")
        assert upstream._current_authorization().value == "Bearer cap1.second-token-longer"  # type: ignore[union-attr]
    assert "token read again" in caplog.text and "chmod 600" in caplog.text
    assert "cap1." not in caplog.text
