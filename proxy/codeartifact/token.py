"""CodeArtifact authorization tokens for one domain: fetched, kept fresh, replaced when rejected.

Timing, for a token whose response says it lives L seconds (the ``expiration`` the service gave,
not the duration asked: the service may return less):

- margin = min(L * 0.5, 15 min): 12-hour tokens are replaced 15 minutes before they expire,
  a 15-minute token after 7.5 minutes, a 4-second test token after 2 seconds;
- from ``expiration - margin`` on, ``token()`` waits for a fresh token rather than hand out the
  old one; while refreshes fail the old token is still handed out until ``expiration - margin / 2``,
  so no request carries a token in its last minutes (last 7.5 minutes for 12-hour tokens);
- a background task (``start()``/``stop()``) refreshes at ``expiration - margin`` even without
  traffic, so requests normally never wait.

Failures back off exponentially with jitter (``backoff_base`` doubling up to ``backoff_cap``);
during the back-off ``token()`` answers at once: the old token while it is usable, otherwise the
last error, so callers can serve cached content instead of queueing behind AWS.

``invalidate(token)`` is for a 401/403 a repository endpoint answered to that token: it refreshes
only if that token is still the current one, so a burst of rejections costs one refresh, and at
most once per ``min_invalidate_interval`` (a repository that refuses every token, e.g. for want of
a permission, must not turn every request into a GetAuthorizationToken call).

Concurrency: all state lives on one event loop. One refresh at a time (single flight): callers
await a shared task, shielded, so a caller that gives up does not cancel it for the others.
Tokens never appear in logs, exceptions or reprs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from proxy.codeartifact.domain import DomainClient, DomainError
from proxy.config.model import CodeArtifactDomain
from proxy.upstream.http import backoff_delay

log = logging.getLogger(__name__)

REFRESH_FRACTION = 0.5
MAX_REFRESH_MARGIN = 15 * 60.0
NO_TOKEN_YET = "no token yet"


@dataclass(frozen=True)
class DomainHealth:
    """What ``/readyz`` reports for a domain: healthy while a usable token is held."""

    name: str
    healthy: bool
    reason: str | None  # why not healthy: "no credentials", "access denied", ...; None when healthy
    token_expires_at: float | None  # epoch seconds


@dataclass(frozen=True)
class _HeldToken:
    value: str = field(repr=False)
    expiration: float  # epoch seconds, for health
    refresh_at: float  # on the provider's clock
    usable_until: float  # on the provider's clock


def refresh_margin(lifetime: float) -> float:
    """How long before expiry a token of this lifetime is replaced."""
    return min(lifetime * REFRESH_FRACTION, MAX_REFRESH_MARGIN)


class TokenProvider:
    """Authorization tokens of one CodeArtifact domain (see the module docstring for the rules)."""

    def __init__(
        self,
        domain: CodeArtifactDomain,
        client: DomainClient,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        min_invalidate_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = domain.name
        self._client = client
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._min_invalidate_interval = min_invalidate_interval
        self._clock = clock
        self._held: _HeldToken | None = None
        self._last_error: DomainError | None = None
        self._failures = 0
        self._retry_at = 0.0  # no attempt before this (clock) while failing
        self._last_invalidation = -float("inf")
        self._inflight: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def token(self) -> str:
        """A token good for a request now; raises ``DomainError`` when none can be had."""
        now = self._clock()
        held = self._held
        if held is not None and now < held.refresh_at:
            return held.value
        if now < self._retry_at:
            return self._usable_or_raise()
        with contextlib.suppress(DomainError):
            await self._refresh()
        return self._usable_or_raise()

    async def invalidate(self, token: str) -> None:
        """A repository endpoint rejected ``token`` (401/403): replace it if it is still current."""
        held = self._held
        if held is None or held.value != token:
            return  # already replaced, by a refresh this rejection raced with
        now = self._clock()
        if now - self._last_invalidation < self._min_invalidate_interval:
            log.debug("codeartifact domain %r: token rejected again soon after a refresh; kept", self.name)
            return
        self._last_invalidation = now
        log.info("codeartifact domain %r: a repository endpoint rejected the token; refreshing", self.name)
        self._held = None
        self._retry_at = 0.0  # a rejected token is worth an attempt even during a back-off
        with contextlib.suppress(DomainError):
            await self._refresh()

    def near_expiry(self, token: str) -> bool:
        """True if ``token`` is no longer current or is past its refresh point (for the 404 quirk)."""
        held = self._held
        return held is None or held.value != token or self._clock() >= held.refresh_at

    def health(self) -> DomainHealth:
        held = self._held
        if held is not None and self._clock() < held.usable_until:
            return DomainHealth(self.name, True, None, held.expiration)
        reason = self._last_error.reason if self._last_error else NO_TOKEN_YET
        return DomainHealth(self.name, False, reason, held.expiration if held else None)

    def retry_now(self) -> None:
        """Forget the back-off and try again now (e.g. on SIGHUP, after credentials were fixed)."""
        self._retry_at = 0.0
        self._wake.set()

    async def start(self) -> None:
        """Start the background refresh; the first token is fetched right away."""
        if self._background is None:
            self._background = asyncio.create_task(self._keep_fresh(), name=f"token-refresh-{self.name}")

    async def stop(self) -> None:
        for task in (self._background, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._background = None

    def _usable_or_raise(self) -> str:
        held = self._held
        if held is not None and self._clock() < held.usable_until:
            return held.value
        error = self._last_error
        if error is None:
            raise DomainError(self.name, NO_TOKEN_YET)
        raise DomainError(error.domain, error.reason, error.detail)

    async def _refresh(self) -> None:
        """Join the refresh in flight or start one (single flight)."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch(), name=f"token-fetch-{self.name}")
            # Mark a failure as retrieved even if every waiter was cancelled.
            self._inflight.add_done_callback(lambda task: task.cancelled() or task.exception())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        try:
            fresh = await self._client.get_authorization_token()
            lifetime = fresh.expiration - time.time()
            if lifetime <= 0:
                raise DomainError(self.name, "error: token already expired", "check the system clock")
        except DomainError as exc:
            self._record_failure(exc)
            raise
        except Exception as exc:  # an unexpected answer must not end the background refresh
            log.debug("codeartifact domain %r: unexpected failure", self.name, exc_info=True)
            error = DomainError(self.name, f"error: {type(exc).__name__}")
            self._record_failure(error)
            raise error from None
        finally:
            self._inflight = None
        now = self._clock()
        margin = refresh_margin(lifetime)
        expires = now + lifetime
        self._held = _HeldToken(fresh.value, fresh.expiration, expires - margin, expires - margin / 2)
        if self._failures:
            log.info("codeartifact domain %r: authorization token obtained again", self.name)
        log.debug(
            "codeartifact domain %r: new authorization token, valid for %.0f s, refresh in %.0f s",
            self.name,
            lifetime,
            lifetime - margin,
        )
        self._failures, self._last_error, self._retry_at = 0, None, 0.0

    def _record_failure(self, exc: DomainError) -> None:
        self._failures += 1
        self._last_error = exc
        delay = backoff_delay(self._failures, self._backoff_base, self._backoff_cap)
        self._retry_at = self._clock() + delay
        log.warning(
            "%s; GetAuthorizationToken failed %d time(s), next attempt in %.1f s", exc, self._failures, delay
        )

    def _next_due(self) -> float:
        held = self._held
        return max(held.refresh_at if held else 0.0, self._retry_at)

    async def _keep_fresh(self) -> None:
        while True:
            wait = self._next_due() - self._clock()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
                continue
            with contextlib.suppress(DomainError):
                await self._refresh()
