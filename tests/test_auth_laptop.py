"""The laptop default: a loopback listener without [auth] (as the embedded default) lets every client in
with no token and the aws CLI with whatever keys it has; writes are still audited (to stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from proxy.config.loader import embedded_default
from tests.fakes.codeartifact import aws_environment
from tests.fakes.pypi_index import make_wheel

VENV_BIN = Path(sys.executable).parent


def test_the_embedded_default_listens_on_loopback_with_anonymous_all(tmp_path):
    config = embedded_default({"HOME": str(tmp_path)})
    assert (config.server.listen.host, config.auth.anonymous, dict(config.principals)) == (
        "127.0.0.1",
        "all",
        {},
    )


def test_a_loopback_proxy_without_auth_needs_no_token_from_any_client(tmp_path, daemon_factory):
    daemon = daemon_factory("[repository.local]\npublish = true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIP_", "TWINE_"))}
    env.update(
        {
            k: v
            for k, v in aws_environment(tmp_path / "aws", access_key="AKIDANY", secret_key="x").items()
            if v
        }
    )
    command = [str(VENV_BIN / "aws"), "codeartifact", "get-authorization-token", "--domain", "local"]
    command += ["--endpoint-url", daemon.url, "--region", "us-east-1", "--output", "json"]
    token = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert token.returncode == 0, token.stderr
    assert json.loads(token.stdout)["authorizationToken"]
    # twine must send some credentials; the proxy takes whatever it gets
    filename, data = make_wheel("laptop-pkg", "1.0.0")
    (tmp_path / filename).write_bytes(data)
    (tmp_path / "pypirc").write_text("")
    upload = [
        str(VENV_BIN / "twine"),
        "upload",
        "--non-interactive",
        "--config-file",
        str(tmp_path / "pypirc"),
    ]
    upload += [
        "-u",
        "me",
        "-p",
        "whatever",
        "--repository-url",
        f"{daemon.url}/pypi/local/",
        str(tmp_path / filename),
    ]
    uploaded = subprocess.run(
        upload, env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120
    )
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    install = [sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir", "--no-input"]
    install += [
        "--index-url",
        f"{daemon.url}/pypi/local/simple/",
        "--target",
        str(tmp_path / "t"),
        "laptop-pkg",
    ]
    installed = subprocess.run(
        install,
        env={**env, "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert httpx.get(f"{daemon.url}/npm/local/laptop-none").status_code == 404  # not 401: no token needed
    audit = [json.loads(line) for line in daemon.log_text().splitlines() if line.startswith('{"time"')]
    assert any(a["operation"] == "PublishPackageVersion" and a["principal"] == "anonymous" for a in audit)
    assert "whatever" not in daemon.log_text()
