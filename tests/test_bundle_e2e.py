"""Export from a connected daemon, import into an offline one with no upstreams, build there with the
real clients: ``npm ci``, ``pip install --require-hashes``, ``mvn package``. Also: an incremental bundle
holds only the new versions; export works on a stopped daemon's store; importing twice changes
nothing; a bundle with one flipped byte imports every intact entry and names the broken one; a signed
bundle checked with another key is refused whole.

The connected daemon and the offline one use the same port, one after the other: npm's lockfile keeps
the tarball URLs it resolved.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx

from tests.fakes.daemon import ROOT, free_port, start_daemon, write_config
from tests.fakes.maven_client import Maven, copy_project, mvn_binary, write_settings
from tests.fakes.pypi_index import requirements
from tests.test_bundle import keys
from tests.test_npm_e2e import Npm, node_require, npm_binary, project
from tests.test_prefetch_e2e import FakeUpstreams
from tests.test_pypi_e2e import Clients


def proxy(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "proxy", "--config", str(config), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def manifest(bundle: Path) -> dict:
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return json.loads(member.read())


def flip_a_byte(bundle: Path, target: Path) -> str:
    """Copy ``bundle`` with one byte of its first tarball blob flipped; returns that entry's label."""
    data = bytearray(bundle.read_bytes())
    entries = manifest(bundle)["entries"]
    entry = next(e for e in entries if e["format"] == "npm")
    with tarfile.open(bundle) as tar:
        member = tar.getmember(f"blobs/{entry['assets'][0]['sha256']}")
        data[member.offset_data + member.size // 2] ^= 0x01
    target.write_bytes(bytes(data))
    scope = f"@{entry['namespace']}/" if entry["namespace"] else ""
    return f"npm {scope}{entry['name']}@{entry['version']}"


def test_export_import_and_build_offline(tmp_path: Path) -> None:
    npm_bin, mvn_bin = npm_binary(), mvn_binary()
    upstreams = FakeUpstreams()
    npm_fake, pypi_fake = upstreams.npm, upstreams.pypi
    npm_fake.add("e2e-dep", "1.0.0")
    npm_fake.add("@e2e/top", "1.2.0", dependencies={"e2e-dep": "^1.0.0"})
    npm_fake.add("e2e-later", "3.0.0")
    pins = {
        "e2e-air": pypi_fake.add_wheel("e2e-air", "1.0.0", requires_dist=["e2e-air-dep"], pep658=True),
        "e2e-air-dep": pypi_fake.add_wheel("e2e-air-dep", "2.0.0"),
    }
    connected = upstreams.start()
    port = free_port()
    sign, sign_pub = keys(tmp_path, "signer")
    _, other_pub = keys(tmp_path, "other")
    daemon = None
    try:
        # -- the connected side: the clients fill the store, export writes bundles ------------------
        (tmp_path / "a").mkdir()
        config_a = write_config(tmp_path / "a", connected, port=port)
        daemon = start_daemon(config_a, tmp_path / "a.log")
        npm = Npm(npm_bin, tmp_path / "npm", f"{daemon.url}/npm/dev/")
        app = project(tmp_path / "app", {"@e2e/top": "^1.0.0"})
        npm.run("install", cwd=app)
        reqs = tmp_path / "requirements.txt"
        reqs.write_text(requirements(pins))
        Clients(tmp_path / "pip-a", daemon.url, repository="dev").install("--require-hashes", "-r", str(reqs))
        maven_a = Maven(mvn_bin, write_settings(tmp_path / "settings-a.xml", f"{daemon.url}/maven/java/"))
        maven_a.run(
            copy_project("app", tmp_path / "mvn-a", LIB_DEPENDENCY=""), tmp_path / "local-a", "package"
        )

        dev = tmp_path / "dev.bundle"
        done = proxy(config_a, "export", "--repository", "dev", "--sign-key", str(sign), "--output", str(dev))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        labels = {(e["format"], e["name"], e["version"]) for e in manifest(dev)["entries"]}
        assert labels == {
            ("npm", "top", "1.2.0"),
            ("npm", "e2e-dep", "1.0.0"),
            ("pypi", "e2e-air", "1.0.0"),
            ("pypi", "e2e-air-dep", "2.0.0"),
        }
        # one version more, fetched after the first bundle: the incremental bundle holds it alone
        packument = httpx.get(f"{daemon.url}/npm/dev/e2e-later", timeout=30).json()
        assert httpx.get(packument["versions"]["3.0.0"]["dist"]["tarball"], timeout=30).status_code == 200
        later = tmp_path / "later.bundle"
        done = proxy(config_a, "export", "--repository", "dev", "--since", str(dev), "--output", str(later))
        assert done.returncode == 0, done.stderr
        assert [(e["name"], e["version"]) for e in manifest(later)["entries"]] == [("e2e-later", "3.0.0")]
        only = tmp_path / "only-npm.bundle"
        lock = app / "package-lock.json"
        done = proxy(
            config_a, "export", "--repository", "dev", "--lockfile", str(lock), "--output", str(only)
        )
        assert done.returncode == 0, done.stderr
        assert {e["name"] for e in manifest(only)["entries"]} == {"top", "e2e-dep"}
        future = tmp_path / "future.bundle"
        done = proxy(
            config_a, "export", "--repository", "dev", "--since", "2999-01-01", "--output", str(future)
        )
        assert done.returncode == 0 and manifest(future)["entries"] == []
        bad = proxy(
            config_a, "export", "--repository", "dev", "--since", "yesterday", "--output", str(future)
        )
        assert bad.returncode == 2 and "neither a bundle file nor a date" in bad.stderr
        assert daemon.stop() == 0

        # export works on the stopped daemon's store too
        java = tmp_path / "java.bundle"
        done = proxy(config_a, "export", "--repository", "java", "--output", str(java))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        jars = [e for e in manifest(java)["entries"] if any(a["name"].endswith(".jar") for a in e["assets"])]
        assert len(jars) > 20

        # -- the air gap: offline, no upstream at all ------------------------------------------------
        served = upstreams.served()
        (tmp_path / "c").mkdir()
        config_c = write_config(
            tmp_path / "c",
            "[repository.dev]\npublish = true\n\n[repository.java]\npublish = true\n"
            "\n[repository.copy]\npublish = true\n",
            port=port,
        )
        config_c.write_text(config_c.read_text().replace("[server]\n", "[server]\noffline = true\n", 1))
        daemon = start_daemon(config_c, tmp_path / "c.log")

        refused = proxy(config_c, "import", str(dev), "--repository", "dev", "--trust-key", str(other_pub))
        assert refused.returncode == 2 and "does not verify with the trust key" in refused.stderr
        assert httpx.get(f"{daemon.url}/-/catalog/dev", timeout=30).json()["packages"] == []

        done = proxy(config_c, "import", str(dev), "--repository", "dev", "--trust-key", str(sign_pub))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "import: 4 imported, 0 already there, 0 failed" in done.stdout
        again = proxy(config_c, "import", str(dev), "--repository", "dev")
        assert again.returncode == 0 and "import: 0 imported, 4 already there, 0 failed" in again.stdout
        done = proxy(config_c, "import", str(java), "--repository", "java")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

        flipped = tmp_path / "flipped.bundle"
        broken = flip_a_byte(dev, flipped)
        partial = proxy(config_c, "import", str(flipped), "--repository", "copy")
        assert partial.returncode == 1
        assert f"failed: {broken}: damaged in the bundle" in partial.stderr, partial.stderr
        assert "import: 3 imported, 0 already there, 1 failed" in partial.stdout

        npm.fresh_cache()
        (app / "node_modules").rename(tmp_path / "node_modules-a")
        npm.run("ci", cwd=app)
        assert node_require(app, "@e2e/top", "e2e-dep") == ["@e2e/top@1.2.0", "e2e-dep@1.0.0"]
        installed, _ = Clients(tmp_path / "pip-c", daemon.url, repository="dev").install(
            "--require-hashes", "-r", str(reqs)
        )
        assert installed == {"e2e_air-1.0.0", "e2e_air_dep-2.0.0"}
        maven_c = Maven(mvn_bin, write_settings(tmp_path / "settings-c.xml", f"{daemon.url}/maven/java/"))
        project_c = copy_project("app", tmp_path / "mvn-c", LIB_DEPENDENCY="")
        maven_c.run(project_c, tmp_path / "local-c", "package")
        assert (project_c / "target" / "app-1.0.jar").is_file()
        assert upstreams.served() == served
        tags = httpx.get(f"{daemon.url}/npm/dev/@e2e%2ftop", timeout=30).json()["dist-tags"]
        assert tags == {"latest": "1.2.0"}

        # import works on a stopped daemon's store too
        assert daemon.stop() == 0
        done = proxy(config_c, "import", str(later), "--repository", "dev")
        assert done.returncode == 0 and "import: 1 imported, 0 already there, 0 failed" in done.stdout, (
            done.stdout
        )
        daemon = start_daemon(config_c, tmp_path / "c-again.log")
        packument = httpx.get(f"{daemon.url}/npm/dev/e2e-later", timeout=30).json()
        assert httpx.get(packument["versions"]["3.0.0"]["dist"]["tarball"], timeout=30).status_code == 200
    finally:
        if daemon is not None:
            daemon.stop()
        upstreams.close()
