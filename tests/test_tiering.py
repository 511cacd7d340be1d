"""Tiering: a laptop daemon whose upstreams are a farm daemon's repository (plain URL upstreams, one per
format). What is published on the farm (``npm publish`` by the real npm, a twine-shaped upload, a Maven
PUT) is served on the laptop, with every URL pointing at the laptop."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from tests.fakes.daemon import start_daemon, write_config
from tests.fakes.pypi_index import make_wheel
from tests.test_npm_e2e import Npm, npm_binary, project

POM = (
    b"<project><modelVersion>4.0.0</modelVersion><groupId>org.tier</groupId><artifactId>t</artifactId>"
    b"<version>1.0</version></project>"
)


def test_publish_on_the_farm_install_on_the_laptop(tmp_path: Path) -> None:
    (tmp_path / "farm").mkdir()
    (tmp_path / "laptop").mkdir()
    farm = start_daemon(
        write_config(tmp_path / "farm", "[repository.dev]\npublish = true\n"), tmp_path / "farm.log"
    )
    laptop = None
    try:
        npm = Npm(npm_binary(), tmp_path / "npm", f"{farm.url}/npm/dev/")
        npm.run("publish", cwd=project(tmp_path / "pkg", {}, name="e2e-tier", version="1.0.0"))
        wheel_name, wheel = make_wheel("e2e-tier", "1.0.0")
        form = {
            ":action": "file_upload",
            "protocol_version": "1",
            "name": "e2e-tier",
            "version": "1.0.0",
            "metadata_version": "2.1",
            "filetype": "bdist_wheel",
            "pyversion": "py3",
            "sha256_digest": hashlib.sha256(wheel).hexdigest(),
        }
        upload = httpx.post(
            f"{farm.url}/pypi/dev/", data=form, files={"content": (wheel_name, wheel)}, timeout=30
        )
        assert upload.status_code == 200, upload.text
        assert (
            httpx.put(f"{farm.url}/maven/dev/org/tier/t/1.0/t-1.0.pom", content=POM, timeout=30).status_code
            == 201
        )

        body = (
            f'[upstream.farm-npm]\nformat = "npm"\nurl = "{farm.url}/npm/dev/"\n'
            f'[upstream.farm-pypi]\nformat = "pypi"\nurl = "{farm.url}/pypi/dev/"\n'
            f'[upstream.farm-maven]\nformat = "maven"\nurl = "{farm.url}/maven/dev/"\n'
            '[repository.js]\nupstreams = ["farm-npm"]\n'
            '[repository.py]\nupstreams = ["farm-pypi"]\n'
            '[repository.java]\nupstreams = ["farm-maven"]\n'
        )
        laptop = start_daemon(write_config(tmp_path / "laptop", body), tmp_path / "laptop.log")
        packument = httpx.get(f"{laptop.url}/npm/js/e2e-tier", timeout=30).json()
        tarball = packument["versions"]["1.0.0"]["dist"]["tarball"]
        assert tarball.startswith(f"{laptop.url}/npm/js/")
        assert (
            httpx.get(tarball, timeout=30).content
            == httpx.get(f"{farm.url}/npm/dev/e2e-tier/-/e2e-tier-1.0.0.tgz", timeout=30).content
        )
        page_url = f"{laptop.url}/pypi/py/simple/e2e-tier/"
        page = httpx.get(
            page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=30
        ).json()
        (file,) = page["files"]
        assert file["hashes"]["sha256"] == hashlib.sha256(wheel).hexdigest()
        file_url = httpx.URL(page_url).join(file["url"])
        assert str(file_url).startswith(f"{laptop.url}/pypi/py/")
        assert httpx.get(file_url, timeout=30).content == wheel
        assert httpx.get(f"{laptop.url}/maven/java/org/tier/t/1.0/t-1.0.pom", timeout=30).content == POM
    finally:
        if laptop is not None:
            laptop.stop()
        farm.stop()
