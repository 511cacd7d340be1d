"""A throwaway PostgreSQL cluster for tests: initdb and pg_ctl from the distribution's packages, run as
an unprivileged user (``nobody`` when the tests run as root, as CI does), in a temporary directory,
on a loopback port; removed when stopped."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian's versioned directory (newest first), else the PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_bindir() -> Path:
    """The binaries; under CI their absence fails the test (``.ci/setup`` installs them), elsewhere skips."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL's initdb is not installed (.ci/setup installs it)")
        pytest.skip("PostgreSQL's initdb is not installed (bash .ci/setup installs it)")
    return bindir


class Cluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="proxy-test-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            self._as_user = ["runuser", "-u", "nobody", "--"]
        self._started = False

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o", options, "start")
        self._started = True

    def stop(self) -> None:
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def data_files(self) -> bytes:
        """Every byte of the cluster's files (tables, indexes, write-ahead log)."""
        return b"".join(p.read_bytes() for p in sorted(self.data.rglob("*")) if p.is_file())

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_user, str(self.bindir / program), *args]
        done = subprocess.run(command, capture_output=True, cwd=self.dir, check=False)
        if done.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace") if (self.dir / "log").exists() else ""
            raise RuntimeError(f"{program} failed: {done.stderr.decode(errors='replace')}{log}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def new_database(cluster: Cluster) -> AsyncIterator[str]:
    """The session's test database, emptied (a new database per test costs a checkpoint); its DSN."""
    admin = await asyncpg.connect(cluster.dsn())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'contract'"):
            await admin.execute("CREATE DATABASE contract")
    finally:
        await admin.close()
    dsn = cluster.dsn("contract")
    con = await asyncpg.connect(dsn)
    try:
        await con.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await con.close()
    yield dsn
