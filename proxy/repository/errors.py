"""The errors a request can end in, whatever the format: a refusal (the client asked for something the
proxy will not do: its status and reason go to the client) and the upstream failures, which the server
answers 502 in one place (``proxy.server.errors``), never as a 404 - except where no upstream was
asked because the daemon is offline (``UpstreamOffline``): there the store is all there is, and a miss
is the 404 it is."""

from __future__ import annotations

from collections.abc import Sequence

from proxy.upstream.base import UpstreamUnavailable
from proxy.upstream.offline import UpstreamOffline


class Refused(Exception):
    """A request refused: ``status`` (4xx) and ``reason`` go to the client as they are."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UpstreamInvalid(Exception):
    """An upstream answered with something that is not what it claims (bad digest, broken document)."""


class NoUpstreamAnswered(Exception):
    """Every place failed and none had the package: a 502 (never a 404, which would be a lie). When
    every upstream that failed is offline (``offline``), nothing was asked at all: the server answers
    404, saying so."""

    def __init__(self, reason: str, *, offline: bool = False) -> None:
        super().__init__(reason)
        self.offline = offline

    @classmethod
    def of(cls, failures: Sequence[Exception]) -> NoUpstreamAnswered:
        """The failure of a chain whose upstreams failed with ``failures`` (at least one)."""
        offline = all(isinstance(failure, UpstreamOffline) for failure in failures)
        return cls("; ".join(str(failure) for failure in failures), offline=offline)

    def about(self, what: str) -> NoUpstreamAnswered:
        """The same failure, its reason prefixed with what was asked for."""
        return NoUpstreamAnswered(f"{what}: {self}", offline=self.offline)


# What the server answers 502: the upstream failed, as opposed to not having the package.
UPSTREAM_FAILURES: tuple[type[Exception], ...] = (UpstreamUnavailable, UpstreamInvalid, NoUpstreamAnswered)
