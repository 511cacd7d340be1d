"""Running the real ``mvn`` (3.8.7, JDK 17) in tests and benchmarks, isolated from the machine.

Every run gets the settings.xml made from ``tests/maven/settings.xml`` (one mirror, ``mirrorOf *``,
pointing at the proxy, so nothing is fetched from anywhere else), its own local repository
(``-Dmaven.repo.local``), batch mode, quiet output, no colours, and no ``JAVA_TOOL_OPTIONS``. Projects
are copied from the templates in ``tests/maven/`` with their ``@...@`` placeholders filled in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.clients import mvn_binary

HERE = Path(__file__).resolve().parent.parent / "maven"  # the settings and project templates
USERNAME = "maven-user"
PASSWORD = "not-a-secret"
# JVM start-up dominates short builds; C1 only is plenty for compiling two classes.
MAVEN_OPTS = "-XX:+TieredCompilation -XX:TieredStopAtLevel=1"


def maven_artifact_jar() -> Path:
    """Maven's own maven-artifact jar (ComparableVersion), next to the mvn in use."""
    lib = Path(os.path.realpath(mvn_binary())).parent.parent / "lib"
    found = sorted(lib.glob("maven-artifact-*.jar"))
    if not found or shutil.which("java") is None:
        if os.environ.get("CI"):
            pytest.fail(f"no maven-artifact jar under {lib} or no java")
        pytest.skip(f"no maven-artifact jar under {lib} or no java")
    return found[0]


def write_settings(path: Path, mirror_url: str) -> Path:
    text = (HERE / "settings.xml").read_text()
    text = (
        text.replace("@MIRROR_URL@", mirror_url)
        .replace("@USERNAME@", USERNAME)
        .replace("@PASSWORD@", PASSWORD)
    )
    path.write_text(text)
    return path


def copy_project(name: str, target: Path, **placeholders: str) -> Path:
    """Copy tests/maven/<name> to ``target``, replacing ``@KEY@`` in its pom.xml."""
    shutil.copytree(HERE / name, target)
    pom = target / "pom.xml"
    text = pom.read_text()
    for key, value in placeholders.items():
        text = text.replace(f"@{key}@", value)
    pom.write_text(text)
    return target


@dataclass
class Maven:
    """The real mvn with one settings.xml; each ``run`` names its own local repository."""

    binary: str
    settings: Path

    def run(
        self, project: Path, local_repository: Path, *goals: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("JAVA_TOOL_OPTIONS", "MAVEN_ARGS")}
        env["MAVEN_OPTS"] = MAVEN_OPTS
        command = [
            self.binary,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-s",
            str(self.settings),
            f"-Dmaven.repo.local={local_repository}",
            *goals,
        ]
        result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(
                f"mvn {' '.join(goals)} failed ({result.returncode}):\n"
                f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
            )
        return result
