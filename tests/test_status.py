"""``status`` and ``status --json`` against a running daemon: repositories with package and version
counts (published and cached), the store against ``max_size``, each upstream's health (one answering,
one down) and the CodeArtifact token's expiry; no daemon is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes.codeartifact import FakeCodeArtifact, isolate_aws
from tests.fakes.daemon import ROOT, free_port, run_command, start_daemon, write_config
from tests.fakes.npm_registry import FakeNpmRegistry

OWNER = "111122223333"


def test_status_of_a_running_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws(monkeypatch, tmp_path / "aws", access_key="AKIDEXAMPLE", secret_key="secret")
    codeartifact = FakeCodeArtifact()
    codeartifact.start_in_thread()
    codeartifact.add_domain("corp", OWNER).add_repository("team")
    down = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    with FakeNpmRegistry() as npm:
        npm.add("e2e-status", "1.0.0")
        npm.add("e2e-status", "1.1.0")
        config = write_config(
            tmp_path,
            npm.upstream_config("public")
            + f'\n[upstream.down]\nformat = "pypi"\nurl = "{down}"\n'
            + f'\n[codeartifact.corp]\ndomain = "corp"\ndomain_owner = "{OWNER}"\nregion = "us-east-1"\n'
            + f'endpoint_url = "{codeartifact.url}"\n'
            + '\n[upstream.team]\ncodeartifact = "corp"\nrepository = "team"\n'
            + '\n[repository.dev]\nupstreams = ["public", "down", "team"]\npublish = true\n'
            + "\n[repository.empty]\n",
        )
        config.write_text(config.read_text().replace("[cache]\n", '[cache]\nmax_size = "1GiB"\n'))
        daemon = start_daemon(config, tmp_path / "daemon.log")
        try:
            packument = httpx.get(f"{daemon.url}/npm/dev/e2e-status", timeout=30).json()
            assert httpx.get(packument["versions"]["1.0.0"]["dist"]["tarball"], timeout=30).status_code == 200
            pom = b"<project><modelVersion>4.0.0</modelVersion></project>"
            put = httpx.put(
                f"{daemon.url}/maven/dev/org/example/pub/1.0/pub-1.0.pom", content=pom, timeout=30
            )
            assert put.status_code in (200, 201), put.text

            done = run_command(config, "status", "--json")
            assert done.returncode == 0, done.stderr
            status = json.loads(done.stdout)
            assert status["offline"] is False
            repositories = {r["name"]: r for r in status["repositories"]}
            assert repositories["empty"] == {
                "name": "empty",
                "publish": False,
                "upstreams": [],
                "packages": 0,
                "versions": 0,
                "published_versions": 0,
            }
            dev = repositories["dev"]
            assert dev["upstreams"] == ["public", "down", "team"] and dev["publish"] is True
            assert (dev["packages"], dev["published_versions"]) == (2, 1)
            assert dev["versions"] >= 2  # the published pom, and the npm version fetched
            assert status["store"]["max_size"] == 1024**3
            assert status["store"]["blobs"] >= 2 and status["store"]["size"] >= len(pom)
            assert 0 < status["store"]["cached_size"] <= status["store"]["size"]
            upstreams = {u["name"]: u for u in status["upstreams"]}
            assert upstreams["public"]["healthy"] is True and upstreams["public"]["kind"] == "url"
            assert upstreams["down"]["healthy"] is False and "connection" in upstreams["down"]["reason"]
            assert upstreams["team"]["kind"] == "codeartifact"
            (domain,) = status["codeartifact"]
            assert domain["name"] == "corp" and domain["healthy"] is True
            assert time.time() < domain["token_expires_at"] <= time.time() + 3600 + 60

            text = run_command(config, "status")
            assert text.returncode == 0, text.stderr
            assert "  dev: 2 packages" in text.stdout and "(1 published)" in text.stdout
            assert "  down (url, pypi): failing: " in text.stdout
            assert "  public (url, npm): ok" in text.stdout
            assert "codeartifact.corp: token expires " in text.stdout
            assert "of max 1.0 GiB" in text.stdout
        finally:
            daemon.stop()
            codeartifact.stop_in_thread()
    # --config after the command is the same as before it
    command = [sys.executable, "-m", "proxy", "status", "--config", str(config)]
    stopped = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 1
    assert f"no daemon answers at {daemon.url}/" in stopped.stderr and "Traceback" not in stopped.stderr
