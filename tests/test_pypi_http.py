"""The PyPI endpoints over HTTP (no pip): normalization redirects, negotiation, ETags, merging across
upstreams, verification, single flight, PEP 658 metadata, stale-if-error and upload refusals.

The proxy runs as a subprocess (tests.fakes.daemon) in front of two fake plain indexes on threads of this
process; the module shares one proxy, and each test uses its own project names.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.formats.pypi.negotiate import JSON_V1
from tests.fakes.daemon import RunningDaemon, download_past_a_stall, eventually, start_daemon, write_config
from tests.fakes.pypi_index import FakePypiIndex, make_sdist, make_wheel, wheel_core_metadata

PIP_ACCEPT = {"Accept": f"{JSON_V1}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"}


@pytest.fixture(scope="module")
def first() -> Iterator[FakePypiIndex]:
    with FakePypiIndex() as fake:
        yield fake


@pytest.fixture(scope="module")
def second() -> Iterator[FakePypiIndex]:
    with FakePypiIndex() as fake:
        yield fake


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, first, second) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("pypi-http")
    body = (
        first.upstream_config("first")
        + second.upstream_config("second")
        + """
[repository.dev]
upstreams = ["first", "second"]
publish = true

[repository.readonly]
upstreams = ["first"]
"""
    )
    running = start_daemon(write_config(tmp, body), tmp / "daemon.log")
    yield running
    running.stop()


def page(proxy: RunningDaemon, project: str, repo: str = "dev", **headers: str) -> httpx.Response:
    return httpx.get(
        f"{proxy.url}/pypi/{repo}/simple/{project}/", headers={**PIP_ACCEPT, **headers}, timeout=30
    )


def files_of(response: httpx.Response) -> dict[str, dict]:
    assert response.status_code == 200, response.text
    return {f["filename"]: f for f in response.json()["files"]}


def upload(proxy: RunningDaemon, filename: str, data: bytes, repo: str = "dev", **fields: str | None):
    name, version = filename.split("-")[:2]
    form: dict[str, str | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version.removesuffix(".tar.gz"),
        "filetype": "sdist" if filename.endswith(".tar.gz") else "bdist_wheel",
        "pyversion": "source" if filename.endswith(".tar.gz") else "py3",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        **fields,
    }
    return httpx.post(
        f"{proxy.url}/pypi/{repo}/",
        data={k: v for k, v in form.items() if v is not None},
        files={"content": (filename, data, "application/octet-stream")},
        auth=("user", "secret"),
        timeout=30,
    )


# -- names and negotiation --------------------------------------------------------------------------
def test_non_normalized_names_redirect_to_the_normalized_url(proxy, first):
    first.add_wheel("Redirect_Me", "1.0")
    for path in ("simple/Redirect_Me/", "simple/redirect.me/", "simple/redirect-me"):
        response = httpx.get(f"{proxy.url}/pypi/dev/{path}", headers=PIP_ACCEPT)
        assert response.status_code == 301
        assert response.headers["Location"] == f"{proxy.url}/pypi/dev/simple/redirect-me/"
    followed = httpx.get(
        f"{proxy.url}/pypi/dev/simple/Redirect_Me/", headers=PIP_ACCEPT, follow_redirects=True
    )
    assert list(files_of(followed)) == ["redirect_me-1.0-py3-none-any.whl"]


def test_accept_chooses_json_or_html_and_406_otherwise(proxy, first):
    file = first.add_wheel("negotiated", "1.0", requires_python=">=3.8")
    as_json = page(proxy, "negotiated")
    assert as_json.headers["Content-Type"] == JSON_V1
    assert as_json.headers["Vary"] == "Accept, Accept-Encoding"
    entry = files_of(as_json)[file.filename]
    assert entry["hashes"] == {"sha256": file.sha256} and entry["requires-python"] == ">=3.8"
    assert entry["url"] == f"{proxy.url}/pypi/dev/files/negotiated/{file.filename}"

    as_html = page(proxy, "negotiated", Accept="text/html")
    assert as_html.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f'href="{entry["url"]}#sha256={file.sha256}" data-requires-python="&gt;=3.8"' in as_html.text
    v1_html = page(proxy, "negotiated", Accept="application/vnd.pypi.simple.v1+html")
    assert v1_html.headers["Content-Type"] == "application/vnd.pypi.simple.v1+html"
    assert v1_html.text == as_html.text

    refused = page(proxy, "negotiated", Accept="application/json")
    assert refused.status_code == 406
    assert JSON_V1 in refused.json()["error"]


def test_pages_carry_an_etag_answer_304_and_are_gzipped_when_asked(proxy, first):
    first.add_wheel("tagged", "1.0")
    plain = page(proxy, "tagged", **{"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    etag = plain.headers["ETag"]
    assert page(proxy, "tagged", **{"Accept-Encoding": "identity"}).headers["ETag"] == etag  # rendered once
    assert page(proxy, "tagged", **{"If-None-Match": etag, "Accept-Encoding": "identity"}).status_code == 304

    with httpx.Client(headers={**PIP_ACCEPT, "Accept-Encoding": "gzip"}) as client:
        zipped = client.get(f"{proxy.url}/pypi/dev/simple/tagged/")
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert zipped.json() == plain.json() and zipped.headers["ETag"] != etag
        again = client.get(
            f"{proxy.url}/pypi/dev/simple/tagged/", headers={"If-None-Match": zipped.headers["ETag"]}
        )
        assert again.status_code == 304


def test_unknown_projects_and_repositories_are_404_with_a_reason(proxy):
    missing = page(proxy, "no-such-project")
    assert missing.status_code == 404 and "no-such-project" in missing.json()["error"]
    unknown = page(proxy, "anything", repo="nope")
    assert unknown.status_code == 404 and "repository nope" in unknown.json()["error"]


# -- merging and files ------------------------------------------------------------------------------
def test_files_are_merged_by_filename_and_the_first_upstream_wins(proxy, first, second):
    _, first_bytes = make_wheel("merged", "1.0")
    _, second_bytes = make_wheel("merged", "1.0", payload_size=10)  # same filename, other bytes
    name = "merged-1.0-py3-none-any.whl"
    first.add("merged", name, first_bytes)
    second.add("merged", name, second_bytes, yanked="from second")
    newer = second.add_wheel("merged", "2.0")
    files = files_of(page(proxy, "merged"))
    assert list(files) == [name, newer.filename]
    assert files[name]["hashes"]["sha256"] == hashlib.sha256(first_bytes).hexdigest()
    assert files[name]["yanked"] is False
    assert httpx.get(files[name]["url"]).content == first_bytes
    assert httpx.get(files[newer.filename]["url"]).content == newer.data
    assert first.file_requests(name) == 1 and second.file_requests(name) == 0


def test_a_file_that_fails_its_sha256_is_a_502_and_nothing_is_stored(proxy, second):
    file = second.add_wheel("tampered", "1.0")
    url = files_of(page(proxy, "tampered"))[file.filename]["url"]
    before = proxy.blob_count()
    second.file_faults[file.filename] = "wrong-bytes"
    wrong = httpx.get(url, timeout=60)
    assert wrong.status_code == 502 and f"the index declared {file.sha256}" in wrong.json()["error"]
    assert proxy.blob_count() == before
    second.file_faults[file.filename] = "truncate"
    assert httpx.get(url, timeout=60).status_code == 502
    assert proxy.blob_count() == before
    second.file_faults.clear()
    assert httpx.get(url).content == file.data
    assert second.file_requests(file.filename) == 3  # nothing bad was kept in between


def test_concurrent_misses_for_one_file_cost_one_download(proxy, first):
    file = first.add_wheel("popular", "1.0", payload_size=2 * 1024 * 1024)
    url = files_of(page(proxy, "popular"))[file.filename]["url"]

    async def fetch_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(50)))

    responses = asyncio.run(fetch_all())
    assert all(r.status_code == 200 and r.content == file.data for r in responses)
    assert first.file_requests(file.filename) == 1


def test_a_file_miss_reaches_the_client_while_the_upstream_is_still_sending(proxy, first):
    file = first.add_wheel("slow-wheel", "1.0", payload_size=2 * 1024 * 1024)
    url = files_of(page(proxy, "slow-wheel"))[file.filename]["url"]
    first.stalled.clear()
    first.file_faults[file.filename] = "stall"  # the first half, then nothing until released
    try:
        assert download_past_a_stall(url, len(file.data), first.stalled, proxy.blob_count) == file.data
    finally:
        first.stalled.set()
        del first.file_faults[file.filename]
    assert httpx.get(url).content == file.data  # from the store
    assert first.file_requests(file.filename) == 1


def test_a_lying_upstream_fails_a_streamed_file_and_nothing_is_stored(proxy, second):
    file = second.add_wheel("liar-wheel", "1.0", payload_size=2 * 1024 * 1024)
    url = files_of(page(proxy, "liar-wheel"))[file.filename]["url"]
    before = proxy.blob_count()
    second.file_faults[file.filename] = "wrong-bytes"
    received = b""
    # The last piece never comes: a body shorter than its Content-Length.
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200  # bytes were on their way before the check came
        for chunk in response.iter_raw():
            received += chunk
    assert 0 < len(received) < len(file.data)
    assert proxy.blob_count() == before
    assert "upstream second sent an asset that fails verification" in proxy.log_text()
    del second.file_faults[file.filename]
    assert httpx.get(url).content == file.data


def test_upstream_pages_are_read_as_pep_691_json_or_else_html(proxy, first):
    json_file = first.add_wheel("read-as-json", "1.0")
    served = first.pages_served[JSON_V1]
    assert json_file.filename in files_of(page(proxy, "read-as-json"))
    assert first.pages_served[JSON_V1] == served + 1
    html_file = first.add_wheel("read-as-html", "1.0")
    first.pep691 = False
    try:
        assert html_file.filename in files_of(page(proxy, "read-as-html"))
    finally:
        first.pep691 = True


def test_an_upstream_page_that_is_broken_is_a_502_and_not_cached(proxy, first):
    file = first.add_wheel("fragile", "1.0")
    first.broken_pages = True
    try:
        broken = page(proxy, "fragile", repo="readonly")
        assert broken.status_code == 502 and "broken" in broken.json()["error"]
    finally:
        first.broken_pages = False
    assert list(files_of(page(proxy, "fragile", repo="readonly"))) == [file.filename]


def test_an_upstream_failure_is_skipped_when_another_answers(proxy, first, second):
    kept = second.add_wheel("halfway", "1.0")
    first.add_wheel("halfway", "2.0")
    first.broken_pages = True
    try:
        assert list(files_of(page(proxy, "halfway"))) == [kept.filename]
    finally:
        first.broken_pages = False


# -- PEP 658 ----------------------------------------------------------------------------------------
def test_upstream_core_metadata_is_served_and_verified(proxy, first):
    good = first.add_wheel("described", "1.0", pep658=True, requires_dist=["negotiated"])
    bad = first.add_wheel("described", "2.0", pep658=True)
    files = files_of(page(proxy, "described"))
    bad.metadata = b"Metadata-Version: 2.1\nName: described\nVersion: 2.0\n"  # changed after the page
    assert files[good.filename]["core-metadata"] == {"sha256": hashlib.sha256(good.metadata).hexdigest()}
    assert files[good.filename]["dist-info-metadata"] == files[good.filename]["core-metadata"]
    metadata = httpx.get(files[good.filename]["url"] + ".metadata")
    assert metadata.status_code == 200 and metadata.content == good.metadata
    assert first.file_requests(good.filename) == 0  # the wheel itself was never needed

    # The page declares the hash of the old metadata: the upstream's new file fails verification.
    refused = httpx.get(files[bad.filename]["url"] + ".metadata")
    assert refused.status_code == 502 and "sha256" in refused.json()["error"]


def test_upstream_core_metadata_stays_what_the_page_declared_after_the_wheel_is_fetched(proxy, first):
    # pip's order: the page, the .metadata to resolve, then the wheel to install.
    file = first.add_wheel("declared", "1.0", pep658=True)
    file.metadata = b"Metadata-Version: 2.1\nName: declared\nVersion: 1.0\nSummary: as the index has it\n"
    url = files_of(page(proxy, "declared"))[file.filename]["url"]
    assert httpx.get(url + ".metadata").content == file.metadata
    assert httpx.get(url).content == file.data
    # The wheel's own METADATA (another Summary) is not taken out over the upstream's file.
    declared = {"sha256": hashlib.sha256(file.metadata).hexdigest()}
    assert files_of(page(proxy, "declared"))[file.filename]["core-metadata"] == declared
    assert httpx.get(url + ".metadata").content == file.metadata
    assert first.requests[f"/packages/{file.filename}.metadata"] == 1


def test_metadata_is_taken_from_a_downloaded_wheel(proxy, second):
    file = second.add_wheel("extracted", "1.0", requires_dist=["tagged"])
    url = files_of(page(proxy, "extracted"))[file.filename]["url"]
    assert "core-metadata" not in files_of(page(proxy, "extracted"))[file.filename]
    assert httpx.get(url + ".metadata").status_code == 404
    assert httpx.get(url).content == file.data
    metadata = wheel_core_metadata(file.data)
    # The page lists it once rendered again, in the background (the page as it was is served meanwhile).
    eventually(lambda: "core-metadata" in files_of(page(proxy, "extracted"))[file.filename])
    entry = files_of(page(proxy, "extracted"))[file.filename]
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert httpx.get(url + ".metadata").content == metadata
    assert second.requests[f"/packages/{file.filename}.metadata"] == 0


# -- uploads ----------------------------------------------------------------------------------------
def test_an_upload_is_listed_with_its_metadata_and_blocks_upstream_versions(proxy, second):
    second.add_wheel("shadowed", "9.0")  # never fetched through dev: publishing the name is allowed
    filename, data = make_wheel("shadowed", "1.0", requires_dist=["tagged"])
    assert upload(proxy, filename, data).status_code == 200
    sdist_name, sdist = make_sdist("shadowed", "1.0")
    assert upload(proxy, sdist_name, sdist, metadata_version="2.2", requires_dist="tagged").status_code == 200
    files = files_of(page(proxy, "shadowed"))
    assert list(files) == [filename, sdist_name]  # the upstream's 9.0 is blocked (origin controls)
    assert files[filename]["core-metadata"] == {
        "sha256": hashlib.sha256(wheel_core_metadata(data)).hexdigest()
    }
    assert httpx.get(files[filename]["url"]).content == data
    sdist_metadata = httpx.get(files[sdist_name]["url"] + ".metadata")
    assert b"Name: shadowed\nVersion: 1.0\n" in sdist_metadata.content
    assert b"Requires-Dist: tagged" in sdist_metadata.content
    assert files[sdist_name]["core-metadata"] == {
        "sha256": hashlib.sha256(sdist_metadata.content).hexdigest()
    }

    again = upload(proxy, filename, data)
    assert again.status_code == 400 and "File already exists" in again.json()["error"]
    assert "File already exists" in again.reason_phrase  # where twine shows it

    listing = httpx.get(f"{proxy.url}/pypi/dev/simple/", headers=PIP_ACCEPT).json()
    assert {"name": "shadowed"} in listing["projects"]


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ({"sha256_digest": "0" * 64}, 400, "sha256_digest does not match"),
        ({"blake2_256_digest": "0" * 64}, 400, "blake2_256_digest does not match"),
        ({"sha256_digest": None, "blake2_256_digest": None}, 400, "declares no digest"),
        ({"version": "1.0-not-pep-440!"}, 400, "not a PEP 440 version"),
        ({"version": "2.0"}, 400, "does not match project"),
        ({"name": "other"}, 400, "does not match project"),
        ({"name": "bad name!"}, 400, "invalid project name"),
        ({"filetype": "sdist"}, 400, "filetype sdist does not fit"),
        ({":action": "submit"}, 400, "unsupported :action"),
    ],
)
def test_bad_uploads_are_refused_with_the_reason(proxy, fields, status, reason):
    filename, data = make_wheel("refused", "1.0")
    response = upload(proxy, filename, data, **fields)
    assert response.status_code == status and reason in response.json()["error"]
    assert page(proxy, "refused").status_code == 404


def test_uploads_need_a_publishing_repository_and_a_package_of_local_origin(proxy, first):
    filename, data = make_wheel("readonly-upload", "1.0")
    refused = upload(proxy, filename, data, repo="readonly")
    assert refused.status_code == 403 and "does not take uploads" in refused.json()["error"]

    fetched = first.add_wheel("fetched-first", "1.0")
    assert httpx.get(files_of(page(proxy, "fetched-first"))[fetched.filename]["url"]).status_code == 200
    filename, data = make_wheel("fetched-first", "2.0")
    blocked = upload(proxy, filename, data)
    assert blocked.status_code == 400 and "blocks publishing" in blocked.json()["error"]

    not_multipart = httpx.post(f"{proxy.url}/pypi/dev/", content=b"x", headers={"Content-Type": "text/plain"})
    assert not_multipart.status_code == 400 and "multipart" in not_multipart.json()["error"]

    filename, data = make_wheel("not-a-wheel", "1.0")
    broken = upload(proxy, filename, b"PK not really a zip")
    assert broken.status_code == 400 and "not a valid wheel" in broken.json()["error"]


# -- stale-if-error ---------------------------------------------------------------------------------
def test_pages_and_files_survive_their_upstream_stopping(tmp_path: Path):
    with FakePypiIndex() as fake:
        file = fake.add_wheel("lasting", "1.0")
        config = write_config(
            tmp_path,
            fake.upstream_config() + '\n[repository.dev]\nupstreams = ["plain"]\n',
            metadata_ttl="1s",
        )
        proxy = start_daemon(config, tmp_path / "daemon.log")
        try:
            url = files_of(page(proxy, "lasting"))[file.filename]["url"]
            assert httpx.get(url).content == file.data
            fake.stop_server()
            time.sleep(1.5)  # past the metadata TTL: the page must be revalidated, and cannot be
            stale = page(proxy, "lasting")
            assert list(files_of(stale)) == [file.filename]
            assert stale.headers["Warning"] == '110 - "Response is Stale"'
            assert httpx.get(url).content == file.data
            assert page(proxy, "never-fetched").status_code == 502  # not a 404: nobody could answer
        finally:
            proxy.stop()
