"""Running the server: listen (TCP or unix socket), tell systemd READY=1, and on SIGTERM or SIGINT stop
accepting, let in-flight requests finish (up to ``server.shutdown_timeout``), then exit 0. Connections
get a request-head deadline and accept failures are logged (see proxy.server.connections)."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from proxy.config.loader import is_loopback
from proxy.config.model import Config, ServerConfig
from proxy.daemon import Daemon
from proxy.server.access_log import AccessLogger, access_logger
from proxy.server.app import build_app
from proxy.server.connections import GuardedAppRunner, log_loop_exceptions, watch_file_descriptors
from proxy.server.systemd import notify

log = logging.getLogger(__name__)


class ListenError(Exception):
    """The listen address cannot be taken (in use, not permitted, a bad socket path)."""


async def serve(config: Config) -> None:
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
        site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True, ssl_context=tls)
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
        notify("READY=1")
        watchdog = asyncio.create_task(watch_file_descriptors())
        await stop.wait()
        watchdog.cancel()
        log.info("stopping: draining in-flight requests")
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
