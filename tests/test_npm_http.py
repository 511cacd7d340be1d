"""The npm registry API of the proxy over HTTP (no npm client): single flight, caching headers,
stale-if-error, failures as 502 and never 404, names, and the endpoints CodeArtifact does not offer."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from proxy.formats.npm.metadata import ABBREVIATED_TYPE
from proxy.store.blobs import SMALL_BLOB_BYTES
from proxy.store.store import GROUP_SECONDS
from tests.fakes.daemon import RunningDaemon, download_past_a_stall, eventually, start_daemon, write_config
from tests.fakes.npm_registry import FakeNpmRegistry

ABBREVIATED = {"Accept": f"{ABBREVIATED_TYPE}; q=1.0, application/json; q=0.8, */*"}


@pytest.fixture
def public() -> Iterator[FakeNpmRegistry]:
    with FakeNpmRegistry() as fake:
        yield fake


@pytest.fixture
def proxy(tmp_path: Path, public: FakeNpmRegistry) -> Iterator[RunningDaemon]:
    running = start(tmp_path, public)
    yield running
    running.stop()


def registry_config(public: FakeNpmRegistry) -> str:
    return public.upstream_config() + '\n[repository.dev]\nupstreams = ["public"]\npublish = true\n'


def start(tmp: Path, public: FakeNpmRegistry, *, ttl: str = "5m") -> RunningDaemon:
    config = write_config(tmp, registry_config(public), metadata_ttl=ttl)
    return start_daemon(config, tmp / "daemon.log")


def test_concurrent_misses_for_one_tarball_cost_one_fetch(proxy, public):
    data = public.add("popular", "1.0.0")
    url = f"{proxy.url}/npm/dev/popular/-/popular-1.0.0.tgz"

    async def fetch_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(100)))

    responses = asyncio.run(fetch_all())
    assert [r.status_code for r in responses] == [200] * 100
    assert all(r.content == data for r in responses)
    assert public.tarball_requests("popular", "1.0.0") == 1
    assert public.packument_requests("popular") == 1
    assert responses[0].headers["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in responses[0].headers  # never recompressed


def test_a_tarball_miss_reaches_the_client_while_the_upstream_is_still_sending(proxy, public, tmp_path):
    data = public.add("slow", "1.0.0", tarball=os.urandom(2 * 1024 * 1024))
    public.tarball_faults["slow-1.0.0.tgz"] = "stall"  # the first MiB, then nothing until released
    url = f"{proxy.url}/npm/dev/slow/-/slow-1.0.0.tgz"
    assert download_past_a_stall(url, len(data), public.stalled, proxy.blob_count) == data
    assert httpx.get(url).content == data  # from the store
    assert public.tarball_requests("slow", "1.0.0") == 1


def test_a_small_tarball_miss_is_answered_in_one_piece_once_verified(proxy, public):
    """Nothing of a small tarball goes out before it was verified: a client never holds part of a
    tarball that may fail, and a failure is a clean 502."""
    data = public.add("small", "1.0.0", tarball=os.urandom(100 * 1024))
    public.tarball_faults["small-1.0.0.tgz"] = "stall"  # the first half, then nothing until released
    url = f"{proxy.url}/npm/dev/small/-/small-1.0.0.tgz"
    headers_in = threading.Event()

    def download() -> tuple[int, str, bytes]:
        with httpx.stream("GET", url, timeout=30) as response:
            headers_in.set()
            return response.status_code, response.headers["Content-Length"], response.read()

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(download)
        eventually(lambda: public.tarball_requests("small", "1.0.0") == 1)
        time.sleep(0.5)  # half the tarball has reached the proxy by now
        assert not headers_in.is_set()  # nothing went out, not even the headers
        public.stalled.set()
        assert answer.result() == (200, str(len(data)), data)

    lie = public.add("lie", "1.0.0", tarball=os.urandom(100 * 1024))
    public.tarball_faults["lie-1.0.0.tgz"] = "wrong-bytes"
    refused = httpx.get(f"{proxy.url}/npm/dev/lie/-/lie-1.0.0.tgz", timeout=30)
    assert refused.status_code == 502 and "dist.integrity" in refused.json()["error"]
    assert lie not in refused.content


def test_a_client_that_leaves_mid_download_does_not_stop_it(proxy, public):
    data = public.add("left", "1.0.0", tarball=os.urandom(2 * 1024 * 1024))
    public.tarball_faults["left-1.0.0.tgz"] = "stall"
    url = f"{proxy.url}/npm/dev/left/-/left-1.0.0.tgz"
    with httpx.stream("GET", url, timeout=30) as response:
        next(response.iter_raw())  # some bytes, then the client hangs up
    public.stalled.set()
    eventually(lambda: proxy.blob_count() == 1)
    assert httpx.get(url).content == data
    assert public.tarball_requests("left", "1.0.0") == 1


def test_a_lying_upstream_fails_a_streamed_download_and_nothing_is_stored(proxy, public, tmp_path):
    data = public.add("liar", "1.0.0", tarball=os.urandom(2 * 1024 * 1024))
    public.tarball_faults["liar-1.0.0.tgz"] = "wrong-bytes"
    url = f"{proxy.url}/npm/dev/liar/-/liar-1.0.0.tgz"
    received = b""
    # The last piece never comes: a body shorter than its Content-Length.
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200  # bytes were on their way before the end came in
        for chunk in response.iter_raw():
            received += chunk
    assert 0 < len(received) < len(data)
    assert proxy.blob_count() == 0
    assert "upstream public sent an asset that fails verification" in proxy.log_text()
    del public.tarball_faults["liar-1.0.0.tgz"]
    assert httpx.get(url).content == data


def test_concurrent_packument_misses_cost_one_fetch(proxy, public):
    public.add("@e2e/hot", "1.0.0")

    async def fetch_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.get(f"{proxy.url}/npm/dev/@e2e%2fhot") for _ in range(50)))

    responses = asyncio.run(fetch_all())
    assert {r.status_code for r in responses} == {200}
    assert public.packument_requests("@e2e/hot") == 1


def test_packument_forms_and_caching_headers(proxy, public):
    public.add("@e2e/dep", "1.0.0", description="a dependency", scripts={"install": "node-gyp rebuild"})
    base = f"{proxy.url}/npm/dev/"
    spellings = ["@e2e%2fdep", "@e2e%2Fdep", "@e2e/dep", "%40e2e%2fdep"]
    bodies = [httpx.get(base + s, headers={"Accept-Encoding": "identity"}) for s in spellings]
    assert {r.status_code for r in bodies} == {200}
    assert len({r.content for r in bodies}) == 1
    full = bodies[0]
    assert full.headers["Content-Type"] == "application/json"
    doc = full.json()
    assert doc["name"] == "@e2e/dep" and doc["versions"]["1.0.0"]["description"] == "a dependency"
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == f"{base}@e2e/dep/-/dep-1.0.0.tgz"
    assert public.url not in full.text

    short = httpx.get(base + "@e2e%2fdep", headers={**ABBREVIATED, "Accept-Encoding": "identity"})
    assert short.headers["Content-Type"] == ABBREVIATED_TYPE
    version = short.json()["versions"]["1.0.0"]
    assert "description" not in version and version["hasInstallScript"] is True

    # gzip for clients that ask, with its own ETag; 304 on If-None-Match.
    raw = httpx.Client().send(
        httpx.Request("GET", base + "@e2e%2fdep", headers={"Accept-Encoding": "gzip"}), stream=True
    )
    compressed = b"".join(raw.iter_raw())
    assert raw.headers["Content-Encoding"] == "gzip" and gzip.decompress(compressed) == full.content
    for response in (full, raw):
        again = httpx.get(base + "@e2e%2fdep", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304 and again.content == b""
    assert public.packument_requests("@e2e/dep") == 1  # everything above was served from memory

    head = httpx.head(base + "@e2e%2fdep")
    assert head.status_code == 200 and head.content == b""


def test_version_documents_by_version_and_tag(proxy, public):
    public.add("lib", "1.0.0", description="a library", contributors=["someone"])
    public.add("lib", "2.0.0-rc.1", tags=("next",))
    base = f"{proxy.url}/npm/dev/lib/"
    httpx.get(f"{proxy.url}/npm/dev/lib", headers=ABBREVIATED)  # what installing needs, merged first
    version = httpx.get(base + "1.0.0").json()
    assert version["version"] == "1.0.0"  # and every field of it:
    assert version["description"] == "a library" and version["contributors"] == ["someone"]
    tagged = httpx.get(base + "next").json()
    assert tagged["version"] == "2.0.0-rc.1"
    assert tagged["dist"]["tarball"] == f"{proxy.url}/npm/dev/lib/-/lib-2.0.0-rc.1.tgz"
    missing = httpx.get(base + "9.9.9")
    assert missing.status_code == 404 and "9.9.9" in missing.json()["error"]
    tarball = httpx.head(f"{proxy.url}/npm/dev/lib/-/lib-1.0.0.tgz")
    assert tarball.status_code == 200 and tarball.headers["Content-Length"] != "0"


def test_tarball_urls_follow_public_url(tmp_path, public):
    public.add("lib", "1.0.0")
    config = write_config(tmp_path, registry_config(public))
    text = config.read_text().replace(
        "[server]\n", '[server]\npublic_url = "https://proxy.example.com/"\n', 1
    )
    config.write_text(text)
    running = start_daemon(config, tmp_path / "daemon.log")
    try:
        doc = httpx.get(f"{running.url}/npm/dev/lib").json()
        assert (
            doc["versions"]["1.0.0"]["dist"]["tarball"]
            == "https://proxy.example.com/npm/dev/lib/-/lib-1.0.0.tgz"
        )
    finally:
        running.stop()


def test_stale_copy_served_with_a_warning_when_upstreams_fail(tmp_path, public):
    public.add("lib", "1.0.0")
    running = start(tmp_path, public, ttl="1s")
    try:
        url = f"{running.url}/npm/dev/lib"
        fresh = httpx.get(url)
        assert fresh.status_code == 200 and "Warning" not in fresh.headers
        public.status = 503
        time.sleep(1.2)
        stale = httpx.get(url, timeout=60)
        assert stale.status_code == 200
        assert stale.headers["Warning"].startswith("110")
        assert stale.json()["versions"]["1.0.0"]["dist"]["tarball"].startswith(running.url)
    finally:
        running.stop()


def test_failures_are_502_not_404(proxy, public):
    public.broken_packuments = True
    public.add("broken", "1.0.0")
    broken = httpx.get(f"{proxy.url}/npm/dev/broken", timeout=60)
    assert broken.status_code == 502 and "broken document" in broken.json()["error"]
    public.broken_packuments = False
    assert httpx.get(f"{proxy.url}/npm/dev/broken").status_code == 200  # the broken answer was not cached

    public.add("cut", "1.0.0")
    public.tarball_faults["cut-1.0.0.tgz"] = "truncate"
    cut = httpx.get(f"{proxy.url}/npm/dev/cut/-/cut-1.0.0.tgz", timeout=60)
    assert cut.status_code == 502
    del public.tarball_faults["cut-1.0.0.tgz"]
    assert httpx.get(f"{proxy.url}/npm/dev/cut/-/cut-1.0.0.tgz").status_code == 200

    assert httpx.get(f"{proxy.url}/npm/dev/absent").status_code == 404  # the upstream said so


def test_unreachable_upstream_is_a_502(tmp_path, public):
    public.add("lib", "1.0.0")
    public.stop_server()
    running = start(tmp_path, public)
    try:
        response = httpx.get(f"{running.url}/npm/dev/lib", timeout=60)
        assert response.status_code == 502 and "public" in response.json()["error"]
    finally:
        running.stop()


BAD_REQUESTS = [
    ("/npm/nowhere/lib", 404, "no repository named 'nowhere'"),
    ("/npm/dev/_private", 400, "must not start with"),
    ("/npm/dev/@scope", 400, "@scope/name"),
    ("/npm/dev/bad%20name", 400, "URL-safe"),
    ("/npm/dev/lib/-/other-1.0.0.tgz", 404, "not a tarball name"),
    ("/npm/dev/-/nothing", 404, "not an npm registry path"),
]


def test_bad_requests_say_why(proxy):
    for path, status, reason in BAD_REQUESTS:
        response = httpx.get(proxy.url + path)
        assert (response.status_code, path) == (status, path)
        assert reason in response.json()["error"]


def test_endpoints_codeartifact_does_not_offer_answer_at_once(proxy, public):
    base = f"{proxy.url}/npm/dev/-/"
    assert httpx.get(base + "ping").json() == {}
    audit = httpx.post(base + "npm/v1/security/advisories/bulk", json={"lib": ["1.0.0"]})
    assert (audit.status_code, audit.json()) == (200, {})
    assert httpx.post(base + "npm/v1/security/audits/quick", json={}).json() == {}
    found = httpx.get(base + "v1/search", params={"text": "lib"}).json()
    assert found["objects"] == [] and found["total"] == 0
    assert "username" in httpx.get(base + "whoami").json()
    assert sum(public.requests.values()) == 0
    wrong = httpx.delete(f"{proxy.url}/npm/dev/lib/1.0.0")
    assert wrong.status_code == 405


def test_dist_tags_api(proxy, public):
    public.add("lib", "1.0.0")
    assert httpx.put(f"{proxy.url}/npm/dev/mine", json=publish_body("mine", "1.0.0", b"x")).status_code == 201
    tags = f"{proxy.url}/npm/dev/-/package/mine/dist-tags"
    assert httpx.put(f"{tags}/beta", json="1.0.0").status_code == 201
    assert httpx.get(tags).json() == {"latest": "1.0.0", "beta": "1.0.0"}
    assert httpx.put(f"{tags}/beta", json="2.0.0").status_code == 404
    assert httpx.delete(f"{tags}/latest").status_code == 400
    assert httpx.delete(f"{tags}/beta").status_code == 200
    assert json.loads(httpx.get(f"{proxy.url}/npm/dev/mine").content)["dist-tags"] == {"latest": "1.0.0"}
    # Tags of a package that is not published here cannot be changed here.
    assert httpx.put(f"{proxy.url}/npm/dev/-/package/lib/dist-tags/beta", json="1.0.0").status_code == 404


def test_revalidated_after_the_ttl(tmp_path, public):
    public.add("lib", "1.0.0")
    running = start(tmp_path, public, ttl="1s")
    try:
        url = f"{running.url}/npm/dev/lib"
        first = httpx.get(url)
        time.sleep(1.1)
        unchanged = httpx.get(url)  # the fake answers 304 to the conditional request
        assert unchanged.headers["ETag"] == first.headers["ETag"]
        public.add("lib", "1.1.0")
        time.sleep(1.1)
        changed = httpx.get(url)
        assert changed.headers["ETag"] != first.headers["ETag"]
        assert set(changed.json()["versions"]) == {"1.0.0", "1.1.0"}
        assert public.packument_requests("lib") == 3
    finally:
        running.stop()


# Gone: evicted, or removed by hand. Emptied: what a power failure can leave of a fetched blob, which
# is not fsynced (it fails authentication when read). Larger than a small blob, so a file of its own.
@pytest.mark.parametrize("damage", [Path.unlink, lambda blob: blob.write_bytes(b"")], ids=["gone", "emptied"])
def test_a_tarball_whose_blob_is_gone_or_broken_is_fetched_again(proxy, public, tmp_path, damage):
    data = public.add("lib", "1.0.0", tarball=os.urandom(SMALL_BLOB_BYTES + 1))
    url = f"{proxy.url}/npm/dev/lib/-/lib-1.0.0.tgz"
    assert httpx.get(url).content == data
    eventually(lambda: proxy.blob_count() == 1)
    for blob in (tmp_path / "cache" / "blobs").rglob("*"):
        if blob.is_file() and "small" not in blob.parts:
            damage(blob)
    assert httpx.get(url).content == data
    assert public.tarball_requests("lib", "1.0.0") == 2
    assert httpx.get(url).content == data
    assert public.tarball_requests("lib", "1.0.0") == 2


def publish_body(name: str, version: str, data: bytes) -> dict[str, object]:
    return {
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {version: {"name": name, "version": version, "dist": {}}},
        "_attachments": {
            f"{name}-{version}.tgz": {"data": base64.b64encode(data).decode(), "length": len(data)}
        },
    }


def test_a_local_repository_upstream_serves_what_is_published_into_it(tmp_path, public):
    public.add("shared", "0.1.0")
    config = write_config(
        tmp_path,
        public.upstream_config()
        + """
[repository.team]
upstreams = ["public"]
publish = true

[repository.dev]
upstreams = ["team"]
""",
    )
    running = start_daemon(config, tmp_path / "daemon.log")
    try:
        dev = f"{running.url}/npm/dev/"
        assert httpx.get(dev + "@e2e%2fown").status_code == 404
        assert (
            httpx.put(
                f"{running.url}/npm/team/@e2e%2fown", json=publish_body("@e2e/own", "1.0.0", b"one")
            ).status_code
            == 201
        )
        assert list(httpx.get(dev + "@e2e%2fown").json()["versions"]) == ["1.0.0"]
        assert (
            httpx.put(
                f"{running.url}/npm/team/@e2e%2fown", json=publish_body("@e2e/own", "1.1.0", b"two")
            ).status_code
            == 201
        )
        doc = httpx.get(dev + "@e2e%2fown").json()  # the publish into team shows through dev at once
        assert doc["dist-tags"] == {"latest": "1.1.0"}
        assert httpx.get(doc["versions"]["1.1.0"]["dist"]["tarball"]).content == b"two"
        # dev itself does not take publishing, and its chain still reaches team's upstream.
        assert httpx.put(dev + "x", json=publish_body("x", "1.0.0", b"x")).status_code == 403
        assert httpx.get(dev + "shared").json()["dist-tags"]["latest"] == "0.1.0"
    finally:
        running.stop()


def metric(proxy: RunningDaemon, line: str) -> float:
    """The value of the /metrics sample that starts with ``line`` (name and labels)."""
    for sample in httpx.get(f"{proxy.url}/metrics").text.splitlines():
        if sample.startswith(line + " "):
            return float(sample.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line} in /metrics")


def test_metrics_count_requests_blobs_and_cached_bytes(proxy, public):
    data = public.add("lib", "1.0.0")
    assert httpx.get(f"{proxy.url}/npm/dev/lib/-/lib-1.0.0.tgz").content == data
    assert metric(proxy, 'codeartifact_proxy_requests_total{format="npm",status="2xx"}') == 1
    assert metric(proxy, "codeartifact_proxy_store_blobs") == 1
    assert metric(proxy, "codeartifact_proxy_store_cached_bytes") == len(data)
    published = httpx.put(f"{proxy.url}/npm/dev/mine", json=publish_body("mine", "1.0.0", b"mine"))
    assert published.status_code == 201
    assert metric(proxy, "codeartifact_proxy_store_blobs") == 2
    assert metric(proxy, "codeartifact_proxy_store_cached_bytes") == len(data)  # published is not cache


def test_what_was_fetched_survives_a_killed_daemon_once_its_group_committed(tmp_path, public):
    """Fetched content is committed in groups, GROUP_SECONDS after the first write: a daemon killed
    after that serves it again with the upstream gone (an index that SQLite recovers, not a broken one)."""
    data = public.add("lib", "1.0.0")
    running = start(tmp_path, public)
    try:
        assert httpx.get(f"{running.url}/npm/dev/lib/-/lib-1.0.0.tgz").content == data
        time.sleep(GROUP_SECONDS * 3)
    finally:
        assert running.stop(signal.SIGKILL) == -signal.SIGKILL
    public.stop_server()
    again = start(tmp_path, public)
    try:
        assert httpx.get(f"{again.url}/npm/dev/lib/-/lib-1.0.0.tgz").content == data
        assert "1.0.0" in httpx.get(f"{again.url}/npm/dev/lib").json()["versions"]
    finally:
        again.stop()
    assert public.tarball_requests("lib", "1.0.0") == 1
