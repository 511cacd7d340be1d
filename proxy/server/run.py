"""Running the server: listen (TCP or unix socket), tell systemd READY=1, and on SIGTERM or SIGINT stop
accepting, let in-flight requests finish (up to ``server.shutdown_timeout``), then exit 0. Connections
get a request-head deadline and accept failures are logged (see proxy.server.connections).

``[server] workers = N``: ``run_workers`` forks N processes before any event loop exists, each a
whole daemon of the store listening on the same address with SO_REUSEPORT (the kernel spreads
connections over them). What they share goes through the store (single flight, publish visibility,
eviction): a shared store's database, as between hosts; on the one-host store, the parent first takes
the store's lock and cleans it up once (``Store.prepare_workers``), and the workers share it through
``proxy.store.host``. The parent forwards SIGTERM, SIGINT
and SIGHUP, tells systemd READY=1 once every worker listens, and starts a worker again when one dies
while serving; a worker that exits before it listens stops them all."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import signal
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from proxy.config.loader import is_loopback
from proxy.config.model import Config, ServerConfig
from proxy.daemon import Daemon
from proxy.server.access_log import AccessLogger, access_logger
from proxy.server.app import build_app
from proxy.server.connections import GuardedAppRunner, log_loop_exceptions, watch_file_descriptors
from proxy.server.systemd import notify
from proxy.store.store import Store

log = logging.getLogger(__name__)


class ListenError(Exception):
    """The listen address cannot be taken (in use, not permitted, a bad socket path)."""


async def serve(config: Config, *, reuse_port: bool = False, ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT. ``reuse_port``: share the TCP address with the other workers;
    ``ready``: called once listening, instead of telling systemd (a worker's parent does)."""
    daemon = await Daemon.open(config)
    try:
        app = build_app(daemon)
    except BaseException:
        await daemon.close()  # e.g. an unreadable policy file: close what was opened, then say why
        raise
    loop = asyncio.get_running_loop()
    log_loop_exceptions(loop)
    runner = GuardedAppRunner(
        app,
        header_timeout=config.server.header_timeout,
        handle_signals=False,
        access_log_class=AccessLogger,
        access_log=access_logger,
        shutdown_timeout=config.server.shutdown_timeout,
    )
    await runner.setup()
    listen = config.server.listen
    site: web.BaseSite
    if listen.unix_path is not None:
        listen.unix_path.unlink(missing_ok=True)
        site = web.UnixSite(runner, str(listen.unix_path))
    else:
        tls = _tls_context(config.server)
        if tls is None and not is_loopback(listen):
            log.warning(
                "serving plain HTTP on %s: tokens cross the network in clear; set tls_cert_file", listen
            )
        site = web.TCPSite(
            runner,
            listen.host,
            listen.port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            ssl_context=tls,
        )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    try:
        try:
            await site.start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        log.info("serving on %s (config: %s)", listen, config.source)
        if ready is None:
            notify("READY=1")
        else:
            ready()
        watchdog = asyncio.create_task(watch_file_descriptors())
        await stop.wait()
        watchdog.cancel()
        log.info("stopping: draining in-flight requests")
        if ready is None:
            notify("STOPPING=1")
    finally:
        await runner.cleanup()
        await daemon.close()
    log.info("stopped")


def _tls_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The listener's TLS context of ``[server] tls_cert_file``/``tls_key_file``; None without them."""
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ListenError(
            f"cannot use tls_cert_file {server.tls_cert_file} / tls_key_file {server.tls_key_file}: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    return context


RESTART_SECONDS = 1.0  # between a worker's death and its replacement, so a crash loop does not spin
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def run_workers(config: Config, run_loop: Callable[[Coroutine[Any, Any, None]], object]) -> int:
    """``[server] workers`` processes serving ``config`` (``run_loop`` runs each one's event loop);
    returns the exit status: 0 once every worker stopped after SIGTERM/SIGINT, 1 when a worker could
    not start (its reason is on stderr). Call it before any event loop or thread exists: it forks."""
    root_lock = None if config.store.shared else Store.prepare_workers(config.cache)
    try:
        return _run_workers(config, run_loop)
    finally:
        if root_lock is not None:
            root_lock.release()


def _run_workers(config: Config, run_loop: Callable[[Coroutine[Any, Any, None]], object]) -> int:
    readiness_r, readiness_w = os.pipe()
    workers: dict[int, int] = {}  # pid -> worker number
    for number in range(config.server.workers):
        workers[_fork_worker(config, run_loop, readiness_w)] = number
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = stopping or signum != signal.SIGHUP
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    try:
        if not _wait_until_listening(workers, readiness_r, lambda: stopping):
            failed = not stopping  # a worker exited before it listened, rather than a stop asked
            forward(signal.SIGTERM, None)
            _reap(workers)
            return 1 if failed else 0
        log.info("%d workers serving on %s", len(workers), config.server.listen)
        notify("READY=1")
        while workers:
            pid, status = os.waitpid(-1, 0)
            number = workers.pop(pid, None)
            if number is None or stopping:
                continue
            log.error(
                "worker %d (pid %d) exited with status %d while serving; starting another",
                number,
                pid,
                os.waitstatus_to_exitcode(status),
            )
            time.sleep(RESTART_SECONDS)
            if not stopping:
                workers[_fork_worker(config, run_loop, readiness_w)] = number
        notify("STOPPING=1")
        # Stopped: the process exits now, and a repeated SIGTERM must not turn its exit into a kill.
        for signum in _FORWARDED:
            signal.signal(signum, signal.SIG_IGN)
        return 0
    finally:
        os.close(readiness_r)
        os.close(readiness_w)


def _fork_worker(
    config: Config, run_loop: Callable[[Coroutine[Any, Any, None]], object], readiness: int
) -> int:
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        for signum in _FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        _die_with_parent()
        run_loop(serve(config, reuse_port=True, ready=lambda: os.write(readiness, b"+") and None))
        status = 0
    except ListenError as exc:
        print(f"codeartifact-proxy: {exc}", file=sys.stderr)
    except BaseException:  # the daemon's own errors were logged where they happened
        log.exception("worker failed")
    finally:
        logging.shutdown()
        os._exit(status)


def _die_with_parent() -> None:
    """A worker whose parent was killed (SIGKILL) gets SIGTERM: it drains and exits, not orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_listening(workers: dict[int, int], readiness: int, stopping: Callable[[], bool]) -> bool:
    """True once every worker listens; False when one exited first (or a stop was asked)."""
    listening = 0
    while listening < len(workers):
        if stopping():
            return False
        readable, _, _ = select.select([readiness], [], [], 0.2)
        if readable:
            listening += len(os.read(readiness, 64))
        pid, _status = os.waitpid(-1, os.WNOHANG)
        if pid:
            workers.pop(pid, None)
            return False
    return True


def _reap(workers: dict[int, int]) -> None:
    while workers:
        pid, _status = os.waitpid(-1, 0)
        workers.pop(pid, None)
