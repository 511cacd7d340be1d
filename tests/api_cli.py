"""Driving the proxy's /v1 with the real ``aws`` CLI (v1, from the venv), and publishing test packages
over plain HTTP. The CLI parses every response with botocore's model: a shape it cannot read fails
the call, so a passing call is a response of the right shape."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.npm_registry import make_tarball

AWS = Path(sys.executable).parent / "aws"


@dataclass
class Aws:
    """``aws codeartifact`` against one proxy, with dummy credentials and no user configuration."""

    url: str
    domain: str = "local"
    retries: int = 0  # the CLI's own retries (standard mode) of throttled or failed calls

    def __post_init__(self) -> None:
        if not AWS.exists():
            if os.environ.get("CI"):
                pytest.fail("the aws CLI is not installed, and CI requires the real client")
            pytest.skip("the aws CLI is not installed")

    def run(self, operation: str, *args: str, domain: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(AWS), "codeartifact", operation, *args]
        if domain:
            command += ["--domain", self.domain]
        command += ["--endpoint-url", self.url, "--region", "us-east-1", "--output", "json"]
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "dummy",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_MAX_ATTEMPTS": str(1 + self.retries),
            "AWS_RETRY_MODE": "standard",
        }
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    def __call__(self, operation: str, *args: str, domain: bool = True) -> dict[str, Any]:
        result = self.run(operation, *args, domain=domain)
        if result.returncode != 0:
            raise AssertionError(f"aws codeartifact {operation} failed:\n{result.stdout}\n{result.stderr}")
        return json.loads(result.stdout) if result.stdout.strip() else {}

    def error(self, operation: str, *args: str) -> str:
        """The error the CLI reports (it names the exception shape it parsed) for a refused call."""
        result = self.run(operation, *args)
        assert result.returncode != 0, result.stdout
        return result.stderr


def npm_publish(
    url: str, repository: str, name: str, version: str, manifest: dict[str, Any] | None = None
) -> bytes:
    """Publish ``name@version`` as npm does (PUT of the packument with the tarball attached)."""
    tarball = make_tarball(name, version)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    vdoc = {
        "name": name,
        "version": version,
        **(manifest or {}),
        "dist": {"integrity": integrity, "shasum": hashlib.sha1(tarball).hexdigest()},
    }
    body = {
        "name": name,
        "versions": {version: vdoc},
        "dist-tags": {"latest": version},
        "_attachments": {f"{name}-{version}.tgz": {"data": base64.b64encode(tarball).decode()}},
    }
    path = name.replace("/", "%2f")
    response = httpx.put(f"{url}/npm/{repository}/{path}", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return tarball


def maven_deploy(url: str, repository: str, group: str, artifact: str, version: str, pom: str) -> bytes:
    """Deploy a jar and its POM as ``mvn deploy`` PUTs them; returns the jar."""
    jar = f"jar of {group}:{artifact}:{version}".encode()
    base = f"{url}/maven/{repository}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}"
    for suffix, body in ((".jar", jar), (".pom", pom.encode())):
        response = httpx.put(base + suffix, content=body, timeout=30)
        assert response.status_code in (200, 201), response.text
    return jar
