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
