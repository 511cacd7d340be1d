"""Where a daemon of a configuration answers, and which of its repositories a command means.

The same ``--config`` the daemon runs with tells the command-line side its address: ``[server]
public_url`` when set (what clients are handed anyway), else ``http://`` (``https://`` with
``tls_cert_file``) + ``listen``, with a wildcard
listen address (``0.0.0.0``, ``::``) reached over loopback.
"""

from __future__ import annotations

from proxy.config.model import Config


class DaemonAddressError(Exception):
    """The configuration gives no address an HTTP client on this host can use; the message says why."""


def base_url(config: Config) -> str:
    """The daemon's base URL, ending in ``/``."""
    if config.server.public_url:
        return config.server.public_url
    listen = config.server.listen
    if listen.unix_path is not None:
        raise DaemonAddressError(
            f"{config.source}: server.listen is the unix socket {listen.unix_path}; the npm, pip and "
            "Maven clients need an HTTP address: set server.public_url to the URL they should use"
        )
    host = listen.host or "127.0.0.1"
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    # A listener with a certificate speaks HTTPS (read defensively: TLS is a later [server] key).
    scheme = "https" if getattr(config.server, "tls_cert_file", None) else "http"
    return f"{scheme}://{host}:{listen.port}/"


def unreachable(base: str, error: Exception) -> str:
    """What to tell a user whose command found no daemon at ``base``."""
    return (
        f"no daemon answers at {base} ({type(error).__name__}); "
        "start it with `codeartifact-proxy serve` and the same --config"
    )


def repository_name(config: Config, requested: str | None) -> str:
    """``requested`` when the configuration serves it; with none requested, the only repository (or
    ``local`` among several). Raises ``DaemonAddressError`` naming the choices otherwise."""
    names = sorted(config.repositories)
    if requested is not None:
        if requested not in config.repositories:
            raise DaemonAddressError(
                f"{config.source}: no [repository.{requested}] (repositories: {', '.join(names)})"
            )
        return requested
    if len(names) == 1:
        return names[0]
    if "local" in config.repositories:
        return "local"
    raise DaemonAddressError(
        f"{config.source} serves several repositories; name one with --repository ({', '.join(names)})"
    )
