"""UpstreamHttp and RegistryUpstream: origins, credentials across redirects, retries, Retry-After,
streaming, truncated bodies, timeouts, and no pre-signed URL in logs."""

from __future__ import annotations

import email.utils
import logging
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from proxy.config.model import Credentials
from proxy.formats.registry import token_schemes
from proxy.upstream.base import LinkLocalRefused, UpstreamUnavailable, transport_failure
from proxy.upstream.http import (
    Authorization,
    GuardedResolver,
    HttpSettings,
    UpstreamHttp,
    basic_authorization,
    origin,
    parse_retry_after,
    safe_url,
)
from proxy.upstream.registry import RegistryUpstream
from tests.fakes.codeartifact import FakeCodeArtifact

SCHEMES = token_schemes()  # how each format sends a token
OWNER = "111122223333"
TOKEN = "t0ken-for-http-tests"


class Sleeps:
    """Records the back-off delays instead of sleeping them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def http(sleeps: Sleeps) -> AsyncIterator[UpstreamHttp]:
    client = UpstreamHttp(HttpSettings(read_timeout=0.5, retries=2), sleep=sleeps)
    yield client
    await client.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeCodeArtifact]:
    """Used here for its "S3" redirects and its faults; the token is checked on npm endpoints."""
    async with FakeCodeArtifact() as fake:
        repository = fake.add_domain("dom", OWNER).add_repository("team")
        repository.add_npm_package({"name": "hello"}, {"1.0.0": b"hello tarball"})
        repository.add_maven_file("org/example/big/1.0/big-1.0.jar", bytes(range(256)) * 12_000)
        yield fake


async def bearer(fake: FakeCodeArtifact, http: UpstreamHttp) -> Authorization:
    """A token the fake accepts, issued directly (no botocore needed here)."""
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{fake.url}/v1/authorization-token",
            params={"domain": "dom", "domain-owner": OWNER},
            headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDHTTPTESTS0000001/20260101/us-east-1/"
                "codeartifact/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
                "X-Amz-Date": "20260101T000000Z",
            },
        )
    return Authorization.for_url("Bearer " + response.json()["authorizationToken"], fake.url)


def npm(fake: FakeCodeArtifact, path: str) -> str:
    return fake.domains[("dom", OWNER)].endpoint("team", "npm") + path


@pytest.fixture
async def origin_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A plain server that records the headers of every request."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append({"path": request.path, **request.headers})
        if request.path == "/loop":
            return web.Response(status=302, headers={"Location": "/loop"})
        if request.path == "/here":
            return web.Response(status=307, headers={"Location": "/there?x=1"})
        if request.path == "/to-metadata":
            return web.Response(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        if request.path == "/see-other":
            return web.Response(status=303, headers={"Location": "/there"})
        if request.path == "/private" and request.headers.get("Authorization") != "Basic dXNlcjpwYXNz":
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        if request.path == "/missing":
            return web.Response(status=404)
        return web.Response(text=f"{request.method} {request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


# ---- origins and URLs -------------------------------------------------------------------------


def test_an_explicit_default_port_is_the_same_origin() -> None:
    assert origin("https://ca.example.com:443/npm/r/x") == origin("https://CA.example.com/npm/r/")
    assert origin("http://ca.example.com:80/") == origin("http://ca.example.com/")
    assert origin("https://ca.example.com:8443/") != origin("https://ca.example.com/")
    assert origin("http://ca.example.com/") != origin("https://ca.example.com/")
    assert origin("https://other.example.com/") != origin("https://ca.example.com/")


def test_safe_url_drops_query_fragment_and_user_info() -> None:
    signed = "https://user:pw@bucket.example.com:8443/a/b.tgz?X-Amz-Signature=abc&X-Amz-Expires=60#f"
    assert safe_url(signed) == "https://bucket.example.com:8443/a/b.tgz"


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 5 < parse_retry_after(in_ten) <= 10  # type: ignore[operator]


async def test_credentials_go_only_to_the_origin_they_were_given_for(origin_server, http) -> None:
    url, seen = origin_server
    port = url.rsplit(":", 1)[1]
    authorization = Authorization.for_url("Bearer abc", f"{url}/npm/team/")
    for target in (
        f"http://127.0.0.1:{port}/npm/team/hello/-/hello-1.0.0.tgz",
        f"http://127.0.0.1:{port}/other/path",
        f"http://localhost:{port}/npm/team/hello",  # the same server by another name: another origin
    ):
        async with await http.send("team", target, authorization=authorization):
            pass
    assert [request.get("Authorization") for request in seen] == ["Bearer abc", "Bearer abc", None]


# ---- redirects --------------------------------------------------------------------------------


async def test_a_redirect_to_another_origin_is_followed_without_authorization(fake, http, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    authorization = await bearer(fake, http)
    async with await http.send(
        "team", npm(fake, "hello/-/hello-1.0.0.tgz"), authorization=authorization
    ) as r:
        body = await r.aread()
    assert (r.status, body) == (200, b"hello tarball")
    assert r.url.startswith(fake.s3_url + "/s3/") and "?" not in r.url
    assert fake.s3_authorization_headers == 0
    assert sum(count for path, count in fake.requests.items() if path.startswith("/s3/")) == 1
    assert "X-Amz-Signature" not in caplog.text
    assert any(record.name == "httpx" for record in caplog.records)  # httpx did log the request, redacted


async def test_a_redirect_to_the_same_origin_keeps_authorization(origin_server, http) -> None:
    url, seen = origin_server
    authorization = Authorization.for_url("Bearer same", url)
    async with await http.send("plain", f"{url}/here", authorization=authorization) as r:
        assert (r.status, await r.aread(), r.url) == (200, b"GET /there", f"{url}/there")
    assert [request.get("Authorization") for request in seen] == ["Bearer same", "Bearer same"]


async def test_303_turns_a_post_into_a_get(origin_server, http) -> None:
    url, _ = origin_server
    async with await http.send("plain", f"{url}/see-other", method="POST", content=b"{}") as r:
        assert await r.aread() == b"GET /there"


async def test_a_redirect_loop_is_an_upstream_failure(origin_server, http) -> None:
    url, seen = origin_server
    with pytest.raises(UpstreamUnavailable) as raised:
        await http.send("plain", f"{url}/loop")
    assert raised.value.upstream == "plain" and "redirects" in raised.value.reason
    assert len(seen) == http.settings.max_redirects + 1


async def test_an_authorization_header_from_the_caller_is_not_sent(origin_server, http) -> None:
    url, seen = origin_server
    async with await http.send(
        "plain", f"{url}/x", headers={"Authorization": "Basic client", "Accept": "a/b"}
    ):
        pass
    assert "Authorization" not in seen[0] and seen[0]["Accept"] == "a/b"


# ---- retries ----------------------------------------------------------------------------------


async def test_5xx_is_retried_with_backoff(fake, http, sleeps) -> None:
    fake.fail("/hello$", "status", status=502, times=2)
    async with await http.send("team", npm(fake, "hello"), authorization=await bearer(fake, http)) as r:
        assert r.status == 200
    assert fake.requests["/dom-111122223333/npm/team/hello"] == 3
    assert len(sleeps.delays) == 2 and sleeps.delays[0] <= sleeps.delays[1] * 2


async def test_a_connection_reset_is_retried(fake, http, sleeps) -> None:
    # The client library resends an idempotent request once at once (RFC 9112 9.3.1); then our back-off.
    fake.fail("/hello$", "reset", times=2)
    async with await http.send("team", npm(fake, "hello"), authorization=await bearer(fake, http)) as r:
        assert r.status == 200
    assert len(sleeps.delays) == 1
    assert fake.requests["/dom-111122223333/npm/team/hello"] == 3


async def test_retry_after_is_respected_and_capped(fake, http, sleeps) -> None:
    fake.fail("/hello$", "status", status=429, retry_after="2", times=1)
    fake.fail("/hello$", "status", status=503, retry_after="3600", times=1)
    async with await http.send("team", npm(fake, "hello"), authorization=await bearer(fake, http)) as r:
        assert r.status == 200
    assert sleeps.delays == [2.0, http.settings.retry_after_cap]


async def test_persistent_5xx_is_unavailable_after_the_retries(fake, http, sleeps) -> None:
    fake.fail("/hello$", "status", status=500)
    with pytest.raises(UpstreamUnavailable) as raised:
        await http.send("team", npm(fake, "hello"), authorization=await bearer(fake, http))
    assert (raised.value.upstream, raised.value.reason) == ("team", "HTTP 500")
    assert str(raised.value) == "upstream 'team' unavailable: HTTP 500"
    assert fake.requests["/dom-111122223333/npm/team/hello"] == 1 + http.settings.retries


async def test_other_methods_are_not_retried(fake, http) -> None:
    fake.fail("/hello$", "status", status=500)
    with pytest.raises(UpstreamUnavailable):
        await http.send("team", npm(fake, "hello"), method="PUT", content=b"{}")
    assert fake.requests["/dom-111122223333/npm/team/hello"] == 1


async def test_a_slow_upstream_times_out(fake, http) -> None:
    fake.fail("/hello$", "slow", delay=0.7)
    with pytest.raises(UpstreamUnavailable) as raised:
        await http.send("team", npm(fake, "hello"), authorization=await bearer(fake, http))
    assert raised.value.reason == "timed out waiting for data"


async def test_a_refused_connection_is_unavailable(http, unused_tcp_port) -> None:
    with pytest.raises(UpstreamUnavailable) as raised:
        await http.send("gone", f"http://127.0.0.1:{unused_tcp_port}/x")
    assert raised.value.reason == "connection failed (Connection refused)"


# ---- bodies -----------------------------------------------------------------------------------


async def test_bodies_stream_in_chunks(fake, http) -> None:
    url = fake.domains[("dom", OWNER)].endpoint("team", "maven") + "org/example/big/1.0/big-1.0.jar"
    token = (await bearer(fake, http)).value.removeprefix("Bearer ")
    authorization = Authorization.for_url(basic_authorization("aws", token), fake.url)
    chunks = []
    async with await http.send("team", url, authorization=authorization) as r:
        async for chunk in r.aiter_bytes():
            chunks.append(len(chunk))
    assert sum(chunks) == 256 * 12_000 and len(chunks) > 1


async def test_a_truncated_body_is_an_upstream_failure(fake, http) -> None:
    fake.fail("^/s3/", "truncate")
    async with await http.send(
        "team", npm(fake, "hello/-/hello-1.0.0.tgz"), authorization=await bearer(fake, http)
    ) as r:
        with pytest.raises(UpstreamUnavailable) as raised:
            await r.aread()
    assert raised.value.reason == "body not received completely"


async def test_wrong_bytes_arrive_as_sent(fake, http) -> None:
    """The corrupt fault keeps the length: only a digest check (the format handlers') can catch it."""
    fake.fail("^/s3/", "corrupt")
    url = npm(fake, "hello/-/hello-1.0.0.tgz")
    async with await http.send("team", url, authorization=await bearer(fake, http)) as r:
        body = await r.aread()
    assert len(body) == len(b"hello tarball") and body != b"hello tarball"


# ---- plain registries -------------------------------------------------------------------------


async def test_registry_credentials(origin_server, http) -> None:
    url, seen = origin_server
    upstreams = [
        RegistryUpstream(
            "a", "maven", url, Credentials(username="user", password="pass"), http, SCHEMES["maven"]
        ),
        RegistryUpstream("b", "npm", url + "/", Credentials(token="npm-tok"), http, SCHEMES["npm"]),
        RegistryUpstream("c", "pypi", url, Credentials(token="py-tok"), http, SCHEMES["pypi"]),
        RegistryUpstream("d", "pypi", url, Credentials(), http, SCHEMES["pypi"]),
    ]
    for upstream in upstreams:
        (format,) = upstream.formats
        assert await upstream.endpoint(format) == url + "/"
        async with upstream.open(format, "echo") as response:
            assert response.status == 200
    sent = [request.get("Authorization") for request in seen]
    basic_token = basic_authorization("token", "py-tok")
    assert sent == ["Basic dXNlcjpwYXNz", "Bearer npm-tok", basic_token, None]


async def test_registry_answers(origin_server, http) -> None:
    url, _ = origin_server
    upstream = RegistryUpstream("plain", "npm", url, Credentials(), http, SCHEMES["npm"])
    async with upstream.open("npm", "missing") as response:
        assert response.status == 404
    with pytest.raises(UpstreamUnavailable) as raised:
        async with upstream.open("npm", "private"):
            pass
    assert raised.value.reason == "credentials rejected (HTTP 401)"
    with pytest.raises(ValueError):
        await upstream.endpoint("maven")


# ---- forward proxies --------------------------------------------------------------------------


async def test_the_environment_proxy_is_used_except_for_no_proxy_hosts(origin_server, monkeypatch) -> None:
    url, seen = origin_server  # it plays the forward proxy: it answers whatever it is asked
    port = url.rsplit(":", 1)[1]
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://build:s%40cret@127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.example.com")
    http = UpstreamHttp(HttpSettings(retries=0))
    try:
        for target in ("http://registry.example.com/npm/lib", f"http://localhost:{port}/direct"):
            async with await http.send("plain", target) as response:
                assert response.status == 200
    finally:
        await http.aclose()
    proxied, direct = seen
    assert (proxied["Host"], proxied["path"]) == ("registry.example.com", "/npm/lib")
    assert proxied["Proxy-Authorization"] == basic_authorization("build", "s@cret")
    assert direct["path"] == "/direct" and "Proxy-Authorization" not in direct


# ---- link-local addresses (cloud instance metadata) -------------------------------------------


async def test_link_local_addresses_are_refused_whether_named_or_redirected_to(origin_server, http) -> None:
    url, seen = origin_server
    for target in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", f"{url}/to-metadata"):
        with pytest.raises(UpstreamUnavailable) as raised:
            await http.send("plain", target)
        assert raised.value.reason.startswith("refused:") and "link-local" in raised.value.reason
    assert [request["path"] for request in seen] == ["/to-metadata"]  # refused before connecting


class Answers(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host, port=0, family=socket.AF_INET) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_host_names_that_resolve_to_link_local_addresses_are_refused() -> None:
    mixed = await GuardedResolver(Answers("169.254.169.254", "10.1.2.3")).resolve("registry.example.com")
    assert [answer["host"] for answer in mixed] == ["10.1.2.3"]
    with pytest.raises(LinkLocalRefused) as raised:
        await GuardedResolver(Answers("169.254.170.2", "fe80::1")).resolve("metadata.example.com")
    failure = transport_failure(aiohttp.ClientConnectorDNSError(None, raised.value))  # type: ignore[arg-type]
    assert failure == "refused: metadata.example.com resolves only to link-local addresses"
