"""The errors a request can end in, whatever the format: a refusal (the client asked for something the
proxy will not do: its status and reason go to the client) and the upstream failures, which the server
answers 502 in one place (``proxy.server.errors``), never as a 404."""

from __future__ import annotations

from proxy.upstream.base import UpstreamUnavailable


class Refused(Exception):
    """A request refused: ``status`` (4xx) and ``reason`` go to the client as they are."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UpstreamInvalid(Exception):
    """An upstream answered with something that is not what it claims (bad digest, broken document)."""


class NoUpstreamAnswered(Exception):
    """Every place failed and none had the package: a 502 (never a 404, which would be a lie)."""


# What the server answers 502: the upstream failed, as opposed to not having the package.
UPSTREAM_FAILURES: tuple[type[Exception], ...] = (UpstreamUnavailable, UpstreamInvalid, NoUpstreamAnswered)
