"""``import`` streams each asset from the bundle to the daemon (npm's publish document, the upload
API's form, Maven PUTs), checking its digest as it goes: a blob that changed after the bundle was
checked is refused with nothing stored, and an intact one arrives whole."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import httpx

from proxy.bundle import BundleWriter, Entry, open_bundle
from proxy.bundle.transfer import Report, import_bundle
from tests.fakes.daemon import start_daemon, write_config
from tests.fakes.npm_registry import integrity_of, make_tarball
from tests.fakes.pypi_index import make_wheel

PAYLOAD = bytes(range(256)) * 3000  # several pieces of a stream


def assets() -> dict[tuple[str, str, str, str], dict[str, bytes]]:
    wheel_name, wheel = make_wheel("e2e-streamed", "1.0", payload_size=len(PAYLOAD))
    return {
        ("maven", "org.stream", "big", "1.0"): {
            "big-1.0.jar": PAYLOAD,
            "big-1.0.pom": b"<project><groupId>org.stream</groupId><artifactId>big</artifactId></project>",
        },
        ("npm", "", "e2e-streamed", "1.0.0"): {
            "e2e-streamed-1.0.0.tgz": make_tarball("e2e-streamed", "1.0.0", files={"big.bin": PAYLOAD})
        },
        ("pypi", "", "e2e-streamed", "1.0"): {wheel_name: wheel},
    }


def write_bundle(path: Path) -> None:
    writer = BundleWriter(path)
    entries = []
    for key, files in assets().items():
        listed = []
        for name, data in files.items():
            digest = hashlib.sha256(data).hexdigest()
            writer.add_blob(digest, io.BytesIO(data), len(data))
            listed.append({"name": name, "size": len(data), "sha256": digest})
        metadata: dict[str, object] = {"requires_python": None}
        if key[0] == "npm":
            (data,) = files.values()
            dist = {"integrity": integrity_of(data), "shasum": hashlib.sha1(data).hexdigest(), "tarball": "x"}
            document = {"name": key[2], "version": key[3], "dist": dist}
            metadata = {"document": document, "dist_tags": {"latest": key[3]}}
        entries.append(Entry(*key, 0.0, listed, metadata))
    writer.finish("dev", "2026-12-04T00:00:00+00:00", entries, None)


def flip_last_bytes(path: Path) -> None:
    """Change the last byte of every blob in place (the bundle changed after it was checked)."""
    with tarfile.open(path) as tar:
        offsets = [m.offset_data + m.size - 1 for m in tar.getmembers() if m.name.startswith("blobs/")]
    with path.open("r+b") as file:
        for offset in offsets:
            file.seek(offset)
            byte = file.read(1)
            file.seek(offset)
            file.write(bytes([byte[0] ^ 1]))


def test_import_streams_assets_and_a_blob_changed_meanwhile_stores_nothing(tmp_path: Path) -> None:
    bundle_path = tmp_path / "b.bundle"
    write_bundle(bundle_path)
    daemon = start_daemon(write_config(tmp_path, "[repository.dev]\npublish = true\n"), tmp_path / "d.log")
    base = f"{daemon.url}/"
    try:
        with open_bundle(bundle_path, None) as bundle, httpx.Client(timeout=60) as client:
            assert all(not bundle.broken(entry) for entry in bundle.entries)  # checked when opened
            flip_last_bytes(bundle_path)
            report = Report()
            import_bundle(client, base, "dev", bundle, report)
            assert [label for label, _ in report.failed] == [e.label for e in bundle.entries]
            assert all("does not match its digest" in reason for _, reason in report.failed), report.failed
            assert client.get(f"{base}-/catalog/dev").json()["packages"] == []
            assert client.get(f"{base}maven/dev/org/stream/big/1.0/big-1.0.jar").status_code == 404

        write_bundle(bundle_path)
        with open_bundle(bundle_path, None) as bundle, httpx.Client(timeout=60) as client:
            report = Report()
            import_bundle(client, base, "dev", bundle, report)
            assert not report.failed and len(report.done) == 3
            jar = client.get(f"{base}maven/dev/org/stream/big/1.0/big-1.0.jar")
            assert jar.content == PAYLOAD
            tarball = client.get(f"{base}npm/dev/e2e-streamed/-/e2e-streamed-1.0.0.tgz").content
            (wheel,) = assets()[("pypi", "", "e2e-streamed", "1.0")].values()
            assert tarball == assets()[("npm", "", "e2e-streamed", "1.0.0")]["e2e-streamed-1.0.0.tgz"]
            page = client.get(
                f"{base}pypi/dev/simple/e2e-streamed/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            ).json()
            assert [f["hashes"]["sha256"] for f in page["files"]] == [hashlib.sha256(wheel).hexdigest()]
    finally:
        daemon.stop()
