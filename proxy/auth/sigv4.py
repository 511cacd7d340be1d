"""Verifying AWS Signature Version 4 on /v1 requests, as the aws CLI (botocore) signs them.

The canonical request and the signature are recomputed with botocore's own signer from what the client
sent (method, raw path and query, the headers it says it signed, a hash of the body) and the principal's
secret, then compared in constant time. The credential scope must name the ``codeartifact`` service;
any region is accepted (the proxy has none of its own). ``X-Amz-Date`` may be at most 5 minutes from
the proxy's clock, as AWS allows.

Every refusal is a ``SignatureRefused`` whose message says what is wrong without echoing the signature.
Pure functions; safe anywhere. botocore's signer is imported by the first signed request (it takes
about 5 MiB, which a daemon nobody calls /v1 on never needs).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.auth.principals import Principal, Principals

SERVICE = "codeartifact"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"  # the payload hash of a body left out of the signature (SigV4)
MAX_SKEW = datetime.timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


class SignatureRefused(Exception):
    """The request's SigV4 signature is missing, malformed, stale, of an unknown key or wrong."""


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs of an HTTP request; ``raw_path`` includes the query string as sent."""

    method: str
    raw_path: str
    headers: Mapping[str, str]
    body: bytes
    unsigned_body_allowed: bool = False  # the operation's model lets clients sign UNSIGNED-PAYLOAD


def is_signed(headers: Mapping[str, str]) -> bool:
    return headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")


def verify(request: SignedRequest, principals: Principals, now: datetime.datetime | None = None) -> Principal:
    """The principal whose keys signed ``request``; ``SignatureRefused`` otherwise."""
    if not isinstance(request.headers, CIMultiDict | CIMultiDictProxy):  # header names are case-blind
        request = replace(request, headers=CIMultiDict(request.headers))
    match = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", "").strip())
    if match is None:
        raise SignatureRefused("the Authorization header is not a well-formed AWS4-HMAC-SHA256 signature")
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureRefused("the credential scope must be KEY/DATE/REGION/SERVICE/aws4_request")
    access_key, scope_date, region, service = parts[:4]
    if service != SERVICE:
        raise SignatureRefused(f"the credential scope names service {service!r}, not {SERVICE!r}")
    timestamp = _timestamp(request.headers, now or datetime.datetime.now(datetime.UTC))
    if scope_date != timestamp[:8]:
        raise SignatureRefused("the credential scope's date is not the date of X-Amz-Date")
    principal = principals.by_access_key(access_key)
    if principal is None:
        raise SignatureRefused("the access key id is not one of a principal of this proxy")
    signed_names = match["headers"].split(";")
    if "host" not in signed_names:
        raise SignatureRefused("the signature must cover the Host header")
    expected = [
        _signature(request, principal, region, timestamp, signed_names, payload)
        for payload in _payload_hashes(request)
    ]
    # Every candidate is compared, so the time taken does not tell which one matched.
    matched = [hmac.compare_digest(candidate, match["signature"]) for candidate in expected]
    if not any(matched):
        raise SignatureRefused(
            "the request signature does not match: check the secret access key and signing method"
        )
    return principal


def _timestamp(headers: Mapping[str, str], now: datetime.datetime) -> str:
    raw = headers.get("X-Amz-Date")
    if raw is None:
        raise SignatureRefused("X-Amz-Date is missing")
    try:
        when = datetime.datetime.strptime(raw, _AMZ_DATE).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise SignatureRefused("X-Amz-Date is not of the form YYYYMMDDTHHMMSSZ") from None
    if abs(now - when) > MAX_SKEW:
        raise SignatureRefused(
            "the request is signed more than 5 minutes from the proxy's time (X-Amz-Date); "
            "check the clock and sign it again"
        )
    return raw


def _payload_hashes(request: SignedRequest) -> list[str]:
    """The body hashes the signature may be over: the body's own, or a declared one that agrees."""
    actual = hashlib.sha256(request.body).hexdigest()
    declared = request.headers.get("X-Amz-Content-SHA256")
    if declared is None:
        return [actual, UNSIGNED_PAYLOAD] if request.unsigned_body_allowed else [actual]
    if declared == UNSIGNED_PAYLOAD and request.unsigned_body_allowed:
        return [UNSIGNED_PAYLOAD]
    if not hmac.compare_digest(declared, actual):
        raise SignatureRefused("X-Amz-Content-SHA256 does not match the request body")
    return [actual]


@functools.cache
def _recomputer() -> Any:
    """botocore's signer, fed the headers the client named and a known payload hash (a class made on
    first use: see the module docstring)."""
    from botocore.auth import SigV4Auth
    from botocore.compat import HTTPHeaders

    class Recomputer(SigV4Auth):
        def __init__(self, credentials: Any, region: str, names: list[str], payload: str) -> None:
            super().__init__(credentials, SERVICE, region)
            self._names = names
            self._payload = payload

        def headers_to_sign(self, request: Any) -> HTTPHeaders:
            signed = HTTPHeaders()
            for name in self._names:
                for value in request.headers.get_all(name) or []:
                    signed[name] = value
            return signed

        def payload(self, request: Any) -> str:
            return self._payload

    return Recomputer


def _signature(
    request: SignedRequest,
    principal: Principal,
    region: str,
    timestamp: str,
    names: list[str],
    payload: str,
) -> str:
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = request.headers.get("Host", "")
    aws_request = AWSRequest(method=request.method, url=f"http://{host}{request.raw_path}")
    for name in names:
        value = request.headers.get(name)
        if value is None:
            raise SignatureRefused(f"the signed header {name!r} is missing")
        aws_request.headers[name] = value
    aws_request.context["timestamp"] = timestamp
    credentials = Credentials(principal.access_key_id, principal.secret_access_key)
    signer = _recomputer()(credentials, region, names, payload)
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
