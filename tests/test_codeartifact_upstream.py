"""CodeArtifactRepositoryUpstream against the fake CodeArtifact: npm/PyPI/Maven with the right
credentials, redirected assets without Authorization, one refresh for a burst of rejections, the
404 quirk, no credentials, two domains side by side, build_upstreams, and no secret in any log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urljoin

import pytest

from proxy.codeartifact.domain import DomainClient
from proxy.codeartifact.endpoint import RepositoryEndpoints
from proxy.codeartifact.token import TokenProvider
from proxy.config import model
from proxy.formats.registry import token_schemes
from proxy.upstream.base import UpstreamUnavailable
from proxy.upstream.codeartifact import CodeArtifactRepositoryUpstream
from proxy.upstream.http import HttpSettings, UpstreamHttp
from proxy.upstream.registry import RegistryUpstream, build_upstreams
from tests.fakes.codeartifact import FakeCodeArtifact, isolate_aws

OWNER = "111122223333"
ACCESS_KEY = "AKIDUPSTREAMTESTS001"
SECRET_KEY = "fake-secret-for-upstream-tests-000000001"
JAR = b"PK\x03\x04 not really a jar" * 100


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``predicate()`` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_aws(monkeypatch, tmp_path, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    return tmp_path


@pytest.fixture
async def fake(aws: Path) -> AsyncIterator[FakeCodeArtifact]:
    async with FakeCodeArtifact() as fake:
        domain = fake.add_domain("dom", OWNER)
        team = domain.add_repository("team", upstreams=["base"])
        base = domain.add_repository("base")
        team.add_npm_package({"name": "hello", "dist-tags": {"latest": "1.0.0"}}, {"1.0.0": b"hello 1.0.0"})
        base.add_npm_package({"name": "@e2e/dep"}, {"1.0.0": b"dep 1.0.0"})
        base.add_pypi_file(
            "E2E_Hello", "e2e_hello-1.0-py3-none-any.whl", b"wheel bytes", requires_python=">=3.8"
        )
        base.add_maven_file("org/example/lib/1.0/lib-1.0.jar", JAR)
        yield fake


def domain_config(fake: FakeCodeArtifact, **overrides: object) -> model.CodeArtifactDomain:
    fields: dict[str, object] = {
        "name": "corp",
        "domain": "dom",
        "domain_owner": OWNER,
        "region": "us-east-1",
        "endpoint_url": fake.url,
    }
    fields.update(overrides)
    return model.CodeArtifactDomain(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHttp]:
    client = UpstreamHttp(HttpSettings(retries=1, backoff_base=0.01))
    yield client
    await client.aclose()


Make = Callable[..., tuple[CodeArtifactRepositoryUpstream, TokenProvider]]


@pytest.fixture
async def make(fake: FakeCodeArtifact, http: UpstreamHttp) -> AsyncIterator[Make]:
    made: list[tuple[TokenProvider, DomainClient]] = []

    def make(
        config: model.CodeArtifactDomain | None = None, repository: str = "team", **kwargs: object
    ) -> tuple[CodeArtifactRepositoryUpstream, TokenProvider]:
        config = config or domain_config(fake)
        client = DomainClient(config)
        provider = TokenProvider(config, client, **kwargs)  # type: ignore[arg-type]
        made.append((provider, client))
        upstream = CodeArtifactRepositoryUpstream(
            repository, repository, provider, RepositoryEndpoints(client), http, token_schemes()
        )
        return upstream, provider

    yield make
    for provider, client in made:
        await provider.stop()
        client.close()


async def get(
    upstream: CodeArtifactRepositoryUpstream, format: model.Format, url: str, **kw: object
) -> bytes:
    async with upstream.open(format, url, **kw) as response:  # type: ignore[arg-type]
        assert response.status == 200, (url, response.status)
        return await response.aread()


async def get_status(upstream: CodeArtifactRepositoryUpstream, format: model.Format, url: str) -> int:
    async with upstream.open(format, url) as response:
        await response.aread()
        return response.status


# ---- the formats ------------------------------------------------------------------------------


async def test_npm_packuments_and_redirected_tarballs(fake, make) -> None:
    upstream, _ = make()
    packument = json.loads(await get(upstream, "npm", "hello"))
    tarball = packument["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball.startswith(await upstream.endpoint("npm"))
    assert await get(upstream, "npm", tarball) == b"hello 1.0.0"
    scoped = json.loads(await get(upstream, "npm", "@e2e%2fdep"))  # from the upstream repository "base"
    assert await get(upstream, "npm", scoped["versions"]["1.0.0"]["dist"]["tarball"]) == b"dep 1.0.0"
    assert await get_status(upstream, "npm", "nosuchpackage") == 404
    assert fake.s3_authorization_headers == 0
    assert sum(count for path, count in fake.requests.items() if path.startswith("/s3/")) == 2
    assert fake.operations("GetRepositoryEndpoint") == 1  # cached per (repository, format)
    assert fake.operations("GetAuthorizationToken") == 1
    assert fake.unauthenticated_requests == 0  # npm got Bearer


async def test_pypi_and_maven_use_basic_aws_token(fake, make) -> None:
    upstream, _ = make()
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    async with upstream.open("pypi", "simple/e2e-hello/", headers=accept) as response:
        page = json.loads(await response.aread())
        page_url = response.url
    (file,) = page["files"]
    wheel = await get(upstream, "pypi", urljoin(page_url, file["url"]))
    assert hashlib.sha256(wheel).hexdigest() == file["hashes"]["sha256"]
    html = (await get(upstream, "pypi", "simple/e2e-hello/")).decode()
    assert f'href="{file["url"]}#sha256={file["hashes"]["sha256"]}"' in html
    assert await get(upstream, "maven", "org/example/lib/1.0/lib-1.0.jar") == JAR
    sha1 = await get(upstream, "maven", "org/example/lib/1.0/lib-1.0.jar.sha1")
    assert sha1.decode() == hashlib.sha1(JAR).hexdigest()
    assert fake.s3_authorization_headers == 0
    assert fake.unauthenticated_requests == 0  # pypi and maven got Basic aws:TOKEN


async def test_an_absolute_url_on_another_origin_gets_no_token(fake, make) -> None:
    upstream, _ = make()
    with pytest.raises(UpstreamUnavailable) as raised:
        await get(upstream, "npm", fake.s3_url + "/s3/unknown?X-Amz-Signature=bad")
    assert raised.value.reason == "credentials rejected (HTTP 403)"
    assert fake.s3_authorization_headers == 0
    assert fake.operations("GetAuthorizationToken") == 1  # S3's answer says nothing about the token


# ---- rejected tokens --------------------------------------------------------------------------


async def test_a_token_revoked_mid_stream_costs_one_refresh_and_every_request_succeeds(fake, make) -> None:
    upstream, _ = make()
    assert all(await asyncio.gather(*(get(upstream, "npm", "hello") for _ in range(20))))
    # The next wave is held at the fake until the token is revoked under it.
    fake.fail("/npm/team/hello$", "slow", delay=0.3, times=20)
    wave = asyncio.gather(*(get(upstream, "npm", "hello") for _ in range(20)))
    await eventually(lambda: fake.requests["/dom-111122223333/npm/team/hello"] >= 40)
    fake.revoke_all()
    assert all(await wave)
    assert fake.revoked_token_requests == 20
    assert fake.operations("GetAuthorizationToken") == 2


async def test_a_second_rejection_is_unavailable(fake, make) -> None:
    upstream, _ = make()
    fake.fail("/npm/team/hello$", "status", status=403)
    with pytest.raises(UpstreamUnavailable) as raised:
        await get(upstream, "npm", "hello")
    assert str(raised.value) == "upstream 'team' unavailable: credentials rejected (HTTP 403)"
    assert fake.operations("GetAuthorizationToken") == 2


async def test_a_stale_token_answered_with_404_is_retried_when_near_expiry(fake, make) -> None:
    clock = Clock()
    fake.token_lifetime = 100.0
    fake.stale_token_status = 404
    upstream, provider = make(clock=clock)
    old = await provider.token()
    # The refresh at the refresh point fails (both botocore attempts), so the old token is still in use...
    fake.fail("^/v1/authorization-token$", "status", status=500, times=2)
    clock.now += 60
    assert await provider.token() == old
    # ...and this endpoint answers it with 404 instead of 401.
    fake.revoke_all()
    assert json.loads(await get(upstream, "npm", "hello"))["name"] == "hello"
    assert fake.revoked_token_requests == 1
    assert fake.operations("GetAuthorizationToken") == 2


async def test_a_404_to_a_fresh_token_is_a_plain_not_found(fake, make) -> None:
    upstream, _ = make()
    assert await get_status(upstream, "npm", "nosuchpackage") == 404
    fake.stale_token_status = 404
    fake.revoke_all()
    assert await get_status(upstream, "npm", "hello") == 404
    assert fake.operations("GetAuthorizationToken") == 1


async def test_without_credentials_the_upstream_is_unavailable(fake, make, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    upstream, provider = make()
    with pytest.raises(UpstreamUnavailable) as raised:
        await get(upstream, "npm", "hello")
    assert raised.value.upstream == "team"
    assert raised.value.reason.startswith("codeartifact domain 'corp': no credentials")
    assert not any("/npm/" in path for path in fake.requests)
    assert provider.health().reason == "no credentials"


# ---- two domains, and the factory -------------------------------------------------------------


async def test_two_domains_in_two_accounts_and_regions_side_by_side(fake, make) -> None:
    other = fake.add_domain("other", "444455556666").add_repository("shared")
    other.add_npm_package({"name": "hello"}, {"2.0.0": b"hello 2.0.0 from the other account"})
    first, first_tokens = make()
    second, second_tokens = make(
        domain_config(fake, name="eu", domain="other", domain_owner="444455556666", region="eu-west-1"),
        repository="shared",
    )
    one, two = await asyncio.gather(get(first, "npm", "hello"), get(second, "npm", "hello"))
    assert list(json.loads(one)["versions"]) == ["1.0.0"]
    packument = json.loads(two)
    assert await get(second, "npm", packument["versions"]["2.0.0"]["dist"]["tarball"]) == (
        b"hello 2.0.0 from the other account"
    )
    assert {(t.domain, t.owner, t.region) for t in fake.tokens} == {
        ("dom", OWNER, "us-east-1"),
        ("other", "444455556666", "eu-west-1"),
    }
    assert await first_tokens.token() != await second_tokens.token()
    assert (first_tokens.health().healthy, second_tokens.health().healthy) == (True, True)


async def test_build_upstreams(fake, http, aws) -> None:
    config = model.Config(
        source="test",
        server=model.ServerConfig(),
        cache=model.CacheConfig(path=aws / "cache", key_file=aws / "key"),
        codeartifact=MappingProxyType({"corp": domain_config(fake)}),
        upstreams=MappingProxyType(
            {
                "team": model.CodeArtifactUpstream("team", "corp", "team"),
                "base": model.CodeArtifactUpstream("base", "corp", "base"),
                "public": model.RegistryUpstream("public", "npm", "http://127.0.0.1:9/"),
            }
        ),
        repositories=MappingProxyType({}),
    )
    upstreams = build_upstreams(config, http, token_schemes())
    assert isinstance(upstreams.by_name["team"], CodeArtifactRepositoryUpstream)
    assert isinstance(upstreams.by_name["public"], RegistryUpstream)
    assert list(upstreams.token_providers) == ["corp"]
    await upstreams.start()
    try:
        await eventually(lambda: upstreams.health()[0].healthy)
        async with upstreams.by_name["base"].open("maven", "org/example/lib/1.0/lib-1.0.jar") as response:
            assert await response.aread() == JAR
    finally:
        await upstreams.stop()
    assert fake.operations("GetAuthorizationToken") == 1  # one provider per domain, shared by both


# ---- logs -------------------------------------------------------------------------------------


async def test_no_token_secret_key_or_signed_url_in_any_log_record(fake, make, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    fake.token_lifetime = 2.0
    upstream, provider = make(backoff_base=0.05, backoff_cap=0.1)
    await provider.start()
    # Refreshes ahead of expiry, with traffic, redirected downloads and a revocation in between.
    while len(fake.tokens) < 3:
        packument = json.loads(await get(upstream, "npm", "hello"))
        await get(upstream, "npm", packument["versions"]["1.0.0"]["dist"]["tarball"])
        await get(upstream, "pypi", "simple/e2e-hello/")
        if len(fake.tokens) == 2 and not fake.revoked_token_requests:
            fake.revoke_all()
        await asyncio.sleep(0.05)
    assert fake.revoked_token_requests > 0
    # Access denied, then no credentials at all.
    fake.deny_access_key(ACCESS_KEY)
    provider.retry_now()
    await eventually(lambda: provider.health().reason == "access denied")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    provider.retry_now()
    await eventually(lambda: provider.health().reason == "no credentials")
    await provider.stop()

    secrets = [SECRET_KEY, "X-Amz-Signature="]
    for token in fake.tokens:
        secrets += [token.value, base64.b64encode(f"aws:{token.value}".encode()).decode()]
    texts = [caplog.text] + [record.getMessage() for record in caplog.records]
    leaks = [secret for secret in secrets for text in texts if secret in text]
    assert leaks == []
    loggers = {record.name for record in caplog.records}
    assert {"botocore.endpoint", "proxy.upstream.http"} <= loggers  # requests and redirects were logged
