"""SigV4 verification against requests signed by botocore itself, and the anonymous modes."""

from __future__ import annotations

import datetime
from pathlib import Path
from types import MappingProxyType
from unittest import mock
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from proxy.auth.authorizer import AUTHORIZER, Authorizer
from proxy.auth.middleware import _control_checks, auth_middleware
from proxy.auth.policy_store import PolicyStore
from proxy.auth.principals import Principals
from proxy.auth.sigv4 import SignatureRefused, SignedRequest, verify
from proxy.config.loader import embedded_default
from proxy.config.model import AuthConfig, Config, PrincipalConfig
from proxy.store.keyring import KeyRing

NOW = datetime.datetime(2026, 12, 4, 12, 0, 0, tzinfo=datetime.UTC)


def config(tmp_path: Path, anonymous: str = "none") -> Config:
    base = embedded_default({"HOME": str(tmp_path)})
    ci = PrincipalConfig("ci", "AKIDCI", tmp_path / "ci.secret", "ci-secret", admin=False)
    return Config(
        source=base.source,
        server=base.server,
        cache=base.cache,
        codeartifact=base.codeartifact,
        upstreams=base.upstreams,
        repositories=base.repositories,
        auth=AuthConfig(anonymous),  # type: ignore[arg-type]
        principals=MappingProxyType({"ci": ci}),
    )


def signed(
    url: str,
    body: bytes,
    *,
    secret: str = "ci-secret",
    service: str = "codeartifact",
    when: datetime.datetime = NOW,
) -> SignedRequest:
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials("AKIDCI", secret), service, "ap-southeast-2")
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential=AKIDCI/{signer.credential_scope(request)}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    parts = urlsplit(url)
    headers = {**dict(request.headers.items()), "Host": parts.netloc}
    return SignedRequest("POST", parts.path + (f"?{parts.query}" if parts.query else ""), headers, body)


URL = "http://127.0.0.1:5080/v1/package/versions/delete?domain=local&repository=dev&format=npm&namespace=%40scope&package=a%2Fb"


def test_a_request_signed_by_botocore_verifies_in_any_region(tmp_path):
    principals = Principals(config(tmp_path))
    assert verify(signed(URL, b'{"versions": ["1.0.0"]}'), principals, NOW).name == "ci"


def test_refusals_say_why(tmp_path):
    principals = Principals(config(tmp_path))
    body = b'{"versions": ["1.0.0"]}'
    cases = {
        "does not match": signed(URL, body, secret="wrong"),
        "5 minutes": signed(URL, body, when=NOW - datetime.timedelta(minutes=10)),
        "service 's3'": signed(URL, body, service="s3"),
    }
    changed = signed(URL, body)
    cases["does not match "] = SignedRequest(
        changed.method, changed.raw_path, changed.headers, b'{"versions": ["2"]}'
    )
    moved = signed(URL, body)
    cases["does not match  "] = SignedRequest(
        moved.method, moved.raw_path.replace("dev", "prod"), moved.headers, body
    )
    for reason, request in cases.items():
        with pytest.raises(SignatureRefused, match=reason.strip()):
            verify(request, principals, NOW)
    unknown = signed(URL, body)
    headers = {
        **unknown.headers,
        "Authorization": unknown.headers["Authorization"].replace("AKIDCI", "AKIDXX"),
    }
    with pytest.raises(SignatureRefused, match="not one of a principal"):
        verify(SignedRequest("POST", unknown.raw_path, headers, body), principals, NOW)
    for secret_part in ("ci-secret", unknown.headers["Authorization"].rsplit("=", 1)[1]):
        for reason in cases:
            try:
                verify(cases[reason], principals, NOW)
            except SignatureRefused as exc:
                assert secret_part not in str(exc)


@pytest.mark.parametrize(
    ("mode", "read", "write"), [("none", False, False), ("read", True, False), ("all", True, True)]
)
def test_anonymous_modes(tmp_path, mode, read, write):
    cfg = config(tmp_path, mode)
    keyring = KeyRing.load(tmp_path / "cache.key")
    policies = PolicyStore.open(tmp_path / "cache", keyring)
    authorizer = Authorizer.open(cfg, policies, frozenset(cfg.repositories))
    anonymous = authorizer.anonymous
    assert authorizer.allowed(anonymous, "ReadFromRepository", "local") is read
    assert authorizer.allowed(anonymous, "ListPackages", "local") is read
    assert authorizer.allowed(anonymous, "PublishPackageVersion", "local") is write
    assert authorizer.allowed(anonymous, "PutDomainPermissionsPolicy", None) is write
    ci = authorizer.principals.by_name("ci")
    assert ci is not None and authorizer.allowed(ci, "GetAuthorizationToken", None)  # a token for itself
    assert authorizer.allowed(ci, "PublishPackageVersion", "local") is write  # no policy gives it more


def test_a_copy_needs_copy_on_its_destination_and_read_on_its_source():
    request = make_mocked_request(
        "POST",
        "/v1/copy?domain=local&source-repository=release&destination-repository=dev&format=npm&package=a",
    )
    assert _control_checks("CopyPackageVersions", request) == [
        ("CopyPackageVersions", "dev"),
        ("ReadFromRepository", "release"),
    ]
    other = make_mocked_request("POST", "/v1/packages?domain=local&repository=dev")
    assert _control_checks("ListPackages", other) == [("ListPackages", "dev")]


@pytest.mark.parametrize(
    ("mode", "peer", "allowed"),
    [
        ("none", ("10.1.2.3", 40000), False),
        ("none", ("::ffff:10.1.2.3", 40000, 0, 0), False),
        ("none", ("127.0.0.1", 40000), True),
        ("none", ("::1", 40000, 0, 0), True),
        ("read", ("10.1.2.3", 40000), True),
    ],
)
async def test_the_daemons_own_endpoints_answer_other_hosts_only_with_anonymous_reads(
    tmp_path, mode, peer, allowed
):
    """/-/status and /-/catalog show every repository's content: with no anonymous reads, only a request
    from the daemon's own host gets them (no request leaves this process: the peer is a mocked socket's)."""
    cfg = config(tmp_path, mode)
    app = web.Application()
    policies = PolicyStore.open(tmp_path / "cache", KeyRing.load(tmp_path / "cache.key"))
    app[AUTHORIZER] = Authorizer.open(cfg, policies, frozenset(cfg.repositories))
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name: {"peername": peer, "socket": None}.get(name)
    request = make_mocked_request("GET", "/-/status", app=app, transport=transport)

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text="status")

    response = await auth_middleware([])(request, handler)
    assert response.status == (200 if allowed else 403)
