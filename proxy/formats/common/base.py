"""What most formats share as a ``Format`` (``proxy.formats.format``): clients that speak HTTP Basic
(a token is the password, and a Basic challenge makes them retry with their credentials), the action
a request needs read from its HTTP method, and the /v1 API's format knowledge taken from the format's
``details`` module (``coordinate``, ``version_details``, ``versions_copied``). A format overrides what
it does differently (npm: Bearer tokens, audit POSTs that read, dist-tag changes)."""

from __future__ import annotations

from types import ModuleType

from proxy.formats.common.actions import http_action
from proxy.upstream.http import basic_authorization


class BaseFormat:
    token_challenge = "Basic"

    def __init__(self, details: ModuleType) -> None:
        self.coordinate = details.coordinate
        self.version_details = details.version_details
        self.versions_copied = details.versions_copied

    def token_authorization(self, username: str, token: str) -> str:
        return basic_authorization(username, token)

    def action(self, method: str, path: str) -> str:
        return http_action(method)
