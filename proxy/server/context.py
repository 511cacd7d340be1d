"""Typed keys under which the application keeps what handlers need."""

from aiohttp import web

from proxy.daemon import Daemon

DAEMON = web.AppKey("daemon", Daemon)
