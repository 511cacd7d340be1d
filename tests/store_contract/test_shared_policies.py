"""Permissions policies on a shared store (PostgreSQL catalog, shared blob path): a policy one daemon
stores, every daemon of the store enforces as soon as it commits; a revision is checked against what
is stored, whichever daemon stored it; the database holds the policies sealed. Driven by the real aws
CLI, signed with the principals' keys."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.fakes.codeartifact import aws_environment
from tests.fakes.daemon import RunningDaemon, eventually
from tests.store_contract.daemons import two_daemons
from tests.store_contract.test_wiring import shared_config  # noqa: F401 - the fixture

AWS = Path(sys.executable).parent / "aws"
KEYS = {"admin": "AKIDADMIN0001", "reader": "AKIDREADER001"}
NOTICE_WAIT = 20.0  # how long a notice may take on a loaded machine; the checks end at the first pass


def aws(root: Path, daemon: RunningDaemon, principal: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``aws codeartifact ARGS`` against ``daemon``, signed with ``principal``'s keys."""
    if not AWS.exists():
        if os.environ.get("CI"):
            pytest.fail("the aws CLI is not installed, and CI requires the real client")
        pytest.skip("the aws CLI is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in aws_environment(root / "aws").items() if v is not None})
    env.update(AWS_ACCESS_KEY_ID=KEYS[principal], AWS_SECRET_ACCESS_KEY=f"secret-of-{principal}-0123456789")
    command = [str(AWS), "codeartifact", *args, "--domain", "local", "--endpoint-url", daemon.url]
    command += ["--region", "us-east-1", "--output", "json"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def allow_reader(*actions: str) -> str:
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::000000000000:user/reader"},
        "Action": [f"codeartifact:{a}" for a in actions],
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture
def daemons(tmp_path: Path, shared_config: Path) -> Iterator[tuple[RunningDaemon, RunningDaemon]]:  # noqa: F811
    """Two daemons of one store, no anonymous access, the same two principals in each file."""
    principals = ""
    for name, key in KEYS.items():
        secret = tmp_path / f"{name}.secret"
        secret.write_text(f"secret-of-{name}-0123456789\n")
        secret.chmod(0o600)
        principals += (
            f'[principal.{name}]\naccess_key_id = "{key}"\nsecret_access_key_file = "{secret}"\n'
            f"admin = {'true' if name == 'admin' else 'false'}\n\n"
        )
    tables = '[auth]\nanonymous = "none"\n\n' + principals + "[repository.team]\n"
    with two_daemons(tmp_path, shared_config, tables) as started:
        yield started


def test_a_policy_stored_through_one_daemon_is_enforced_by_the_other(
    tmp_path: Path,
    daemons: tuple[RunningDaemon, RunningDaemon],
    shared_config: Path,  # noqa: F811
) -> None:
    a, b = daemons

    def reader_may_list(daemon: RunningDaemon) -> bool:
        return aws(tmp_path, daemon, "reader", "list-repositories-in-domain").returncode == 0

    refused = aws(tmp_path, b, "reader", "list-repositories-in-domain")
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr

    document = allow_reader("DescribeDomain")
    first = aws(tmp_path, a, "admin", "put-domain-permissions-policy", "--policy-document", document)
    assert first.returncode == 0, first.stderr
    revision = json.loads(first.stdout)["policy"]["revision"]
    second = aws(
        tmp_path, a, "admin", "put-domain-permissions-policy",
        "--policy-document", allow_reader("ListRepositoriesInDomain"), "--policy-revision", revision,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    eventually(lambda: reader_may_list(b), NOTICE_WAIT)
    stored = aws(tmp_path, b, "admin", "get-domain-permissions-policy")
    assert json.loads(stored.stdout)["policy"] == json.loads(second.stdout)["policy"]

    # B checks a revision against what A stored: the first revision is not the current one any more.
    stale = aws(tmp_path, b, "admin", "delete-domain-permissions-policy", "--policy-revision", revision)
    assert stale.returncode != 0 and "ConflictException" in stale.stderr
    assert reader_may_list(a)

    async def stored_rows() -> list[bytes]:
        dsn = shared_config.read_text().split('catalog = "', 1)[1].split('"', 1)[0]
        con = await asyncpg.connect(dsn)
        try:
            return [row["value"] for row in await con.fetch("SELECT value FROM shared_entries")]
        finally:
            await con.close()

    rows = asyncio.run(stored_rows())
    assert rows and not any(b"ListRepositoriesInDomain" in row or b"reader" in row for row in rows)

    deleted = aws(tmp_path, b, "admin", "delete-domain-permissions-policy")
    assert deleted.returncode == 0, deleted.stderr
    eventually(lambda: not reader_may_list(a), NOTICE_WAIT)
