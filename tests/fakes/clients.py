"""The real package clients the end-to-end tests drive: found on PATH (or in a given folder); under CI
a missing client fails the test instead of skipping it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def real_client(name: str, directory: Path | None = None) -> str:
    found = shutil.which(name, path=str(directory) if directory else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, and CI requires the real client")
        pytest.skip(f"{name} is not installed")
    return found


def npm_binary() -> str:
    return real_client("npm")


def mvn_binary() -> str:
    return real_client("mvn")


def yarn_berry_command() -> list[str]:
    """Yarn 2+ (``@yarnpkg/cli-dist``, installed by .ci/setup under .venv) run by node."""
    script = (
        Path(__file__).resolve().parents[2] / ".venv/yarn-berry/node_modules/@yarnpkg/cli-dist/bin/yarn.js"
    )
    if not script.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"yarn 2+ is not installed at {script}, and CI requires the real client")
        pytest.skip(f"yarn 2+ is not installed at {script} (run .ci/setup)")
    return [real_client("node"), str(script)]
