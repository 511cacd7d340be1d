"""What each registered format tells the auth middleware: the action a data-plane request needs and
the challenge a refused token gets."""

from __future__ import annotations

import pytest

from proxy.formats.common import actions
from proxy.formats.registry import FORMATS

BY_NAME = {f.name: f for f in FORMATS}


@pytest.mark.parametrize("fmt", sorted(BY_NAME))
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_need_read_from_repository(fmt: str, method: str) -> None:
    assert BY_NAME[fmt].action(method, "some/path") == actions.READ


@pytest.mark.parametrize(
    ("fmt", "method", "path", "action"),
    [
        ("npm", "PUT", "@scope%2fpkg", actions.PUBLISH),
        ("npm", "PUT", "-/package/pkg/dist-tags/beta", actions.PUT_METADATA),
        ("npm", "POST", "-/npm/v1/security/advisories/bulk", actions.READ),
        ("npm", "DELETE", "pkg/-/pkg-1.0.0.tgz/-rev/1", actions.DELETE),
        ("pypi", "POST", "", actions.PUBLISH),
        ("maven", "PUT", "org/x/a/1.0/a-1.0.jar", actions.PUBLISH),
        ("maven", "DELETE", "org/x/a/1.0/a-1.0.jar", actions.DELETE),
    ],
)
def test_writes_need_the_action_codeartifact_names(fmt: str, method: str, path: str, action: str) -> None:
    assert BY_NAME[fmt].action(method, path) == action


def test_challenges_make_each_client_say_the_token_is_the_problem() -> None:
    assert {name: f.token_challenge for name, f in BY_NAME.items()} == {
        "npm": "Bearer",
        "pypi": "Basic",
        "maven": "Basic",
    }
