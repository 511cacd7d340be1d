"""Issue 3 end to end: the daemon in front of the fake CodeArtifact, with short-lived tokens, without
credentials, and recovering on SIGHUP. Requests go through the npm endpoint with metadata_ttl 0, so every
packument request is an authorized upstream request."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.fakes.codeartifact import FakeCodeArtifact, isolate_aws
from tests.fakes.daemon import start_daemon, write_config

OWNER = "111122223333"
TARBALL = b"\x1f\x8b tarball bytes of hello 1.0.0"


@pytest.fixture
def fake():
    codeartifact = FakeCodeArtifact(token_lifetime=5)
    codeartifact.start_in_thread()
    domain = codeartifact.add_domain("dom", OWNER)
    domain.add_repository("team").add_npm_package(
        {"name": "hello", "dist-tags": {"latest": "1.0.0"}}, {"1.0.0": TARBALL}
    )
    yield codeartifact
    codeartifact.stop_in_thread()


def proxy_config(tmp_path, fake: FakeCodeArtifact):
    config = write_config(
        tmp_path,
        f"""
[codeartifact.corp]
domain = "dom"
domain_owner = "{OWNER}"
region = "us-east-1"
duration = "15m"
endpoint_url = "{fake.url}"

[upstream.team]
codeartifact = "corp"
repository = "team"

[repository.dev]
upstreams = ["team"]
""",
        metadata_ttl="0s",
    )
    return config


def fetch_hello(client: httpx.Client, url: str) -> httpx.Response:
    packument = client.get(f"{url}/npm/dev/hello")
    assert packument.status_code == 200, packument.text
    tarball = packument.json()["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball.startswith(url)
    return client.get(tarball)


def test_clients_never_see_a_token_expire(tmp_path, fake, monkeypatch):
    isolate_aws(monkeypatch, tmp_path / "aws", access_key="AKIDEXAMPLE", secret_key="not-a-real-secret-key")
    daemon = start_daemon(proxy_config(tmp_path, fake), tmp_path / "daemon.log")
    statuses: dict[int, int] = {}
    try:
        with httpx.Client(timeout=30) as client:
            # Until ten tokens were used one after the other (each lives 5 s), a minute at most.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (len(fake.tokens) < 10 or sum(statuses.values()) <= 100):
                response = fetch_hello(client, daemon.url)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.content == TARBALL
    finally:
        assert daemon.stop() == 0
    assert set(statuses) == {200}
    assert sum(statuses.values()) > 100
    assert len(fake.tokens) >= 10
    assert fake.expired_token_requests == 0
    log = daemon.log_text()
    assert not [t for t in fake.tokens if t.value in log]
    assert "not-a-real-secret-key" not in log


def test_without_credentials_cached_content_is_served_and_sighup_recovers(tmp_path, fake, monkeypatch):
    aws = tmp_path / "aws"
    isolate_aws(monkeypatch, aws, access_key="AKIDEXAMPLE", secret_key="not-a-real-secret-key")
    config = proxy_config(tmp_path, fake)
    first = start_daemon(config, tmp_path / "first.log")
    with httpx.Client(timeout=30) as client:
        assert fetch_hello(client, first.url).content == TARBALL
    assert first.stop() == 0
    # Without the warm state the first daemon kept (in which the packument it just served is still
    # fresh), the next one starts from the store, as after a crash.
    (tmp_path / "cache" / "warm").unlink()

    isolate_aws(monkeypatch, aws)  # no credentials anywhere
    daemon = start_daemon(config, tmp_path / "second.log")
    try:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 20
            while True:  # the first token request is under way right after start
                ready = client.get(f"{daemon.url}/readyz")
                component = {c["name"]: c for c in ready.json()["components"]}["codeartifact.corp"]
                if component["reason"] != "no token yet" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert ready.status_code == 503
            assert component["ready"] is False and component["reason"] == "no credentials"

            packument = client.get(f"{daemon.url}/npm/dev/hello")
            assert packument.status_code == 200
            assert packument.headers.get("Warning", "").startswith("110")
            assert fetch_hello(client, daemon.url).content == TARBALL

            aws.mkdir(exist_ok=True)
            (aws / "aws-credentials").write_text(
                "[default]\naws_access_key_id = AKIDLATER\naws_secret_access_key = later-secret-key\n"
            )
            os.kill(daemon.process.pid, signal.SIGHUP)
            deadline = time.monotonic() + 30
            while client.get(f"{daemon.url}/readyz").status_code != 200:
                assert time.monotonic() < deadline, client.get(f"{daemon.url}/readyz").text
                time.sleep(0.2)
            # A stale packument is retried a few seconds later, not on every request.
            deadline = time.monotonic() + 30
            while "Warning" in (fresh := client.get(f"{daemon.url}/npm/dev/hello")).headers:
                assert time.monotonic() < deadline
                time.sleep(0.5)
            assert fresh.status_code == 200
    finally:
        assert daemon.stop() == 0
    assert "later-secret-key" not in daemon.log_text()
