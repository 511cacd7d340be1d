"""The PyPI format's pure parts: Accept negotiation, names, the simple API model rendered as HTML and
JSON and read back from upstream pages, the chain's merge rules, catalog records and core metadata."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config.model import CacheConfig
from proxy.formats.pypi.coremeta import (
    form_metadata,
    metadata_mismatch,
    sdist_metadata_is_static,
    wheel_metadata,
)
from proxy.formats.pypi.merge import Offer, Source, merge
from proxy.formats.pypi.names import belongs, coordinate, is_valid_name, normalize, parse_filename
from proxy.formats.pypi.negotiate import HTML_V1, JSON_V1, choose
from proxy.formats.pypi.pages import _Anchors, _filename, _plain_anchors, parse_page
from proxy.formats.pypi.records import file_entry, find_held, held_assets, published_offers
from proxy.formats.pypi.simple import DistFile, ProjectPage, render_index, render_project
from proxy.repository.origin import FETCHED_DEFAULT, PUBLISHED_DEFAULT
from proxy.store.blobs import BlobInfo
from proxy.store.catalog import AssetRecord, PackageRecord, PackageVersionOrigin, PackageVersionRecord
from proxy.store.seekable import SeekableBlob
from proxy.store.store import Store
from tests.fakes.pypi_index import make_wheel, wheel_core_metadata

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)
SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


# -- Accept negotiation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (PIP_ACCEPT, JSON_V1),
        (None, "text/html; charset=utf-8"),
        ("", "text/html; charset=utf-8"),
        ("text/html", "text/html; charset=utf-8"),
        ("*/*", "text/html; charset=utf-8"),  # a wildcard is a client from before PEP 691
        ("application/*", HTML_V1),  # through a wildcard, HTML first
        (HTML_V1, HTML_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        (f"{JSON_V1};q=0.2, text/html;q=0.9", "text/html; charset=utf-8"),
        (f"text/*;q=0.5, {JSON_V1};q=0.4", "text/html; charset=utf-8"),
        (f"*/*;q=0.1, {JSON_V1};q=0", "text/html; charset=utf-8"),  # exact q=0 beats the wildcard
        (f"{JSON_V1};Q=1.0, text/html;q=0.5", JSON_V1),
        (f"{JSON_V1};q=oops, text/html;q=0.1", "text/html; charset=utf-8"),  # unreadable q is no consent
    ],
)
def test_accept_negotiation(accept, content_type):
    choice = choose(accept)
    assert choice is not None and choice.content_type == content_type
    assert choice.representation == ("json" if content_type == JSON_V1 else "html")


@pytest.mark.parametrize(
    "accept", ["application/json", "text/plain", "*/*;q=0", f"{JSON_V1};q=0, text/*;q=0"]
)
def test_nothing_acceptable_is_none(accept):
    assert choose(accept) is None


# -- names ------------------------------------------------------------------------------------------
def test_names_are_normalized_per_pep_503():
    assert {normalize(n) for n in ("Foo_Bar", "foo-bar", "FOO.bar", "foo__bar", "Foo-._Bar")} == {"foo-bar"}
    assert coordinate("Foo_Bar").name == "foo-bar" and coordinate("x").namespace == ""
    assert is_valid_name("foo.bar_baz-1") and not is_valid_name("-foo") and not is_valid_name("foo bar")


@pytest.mark.parametrize(
    ("filename", "parsed"),
    [
        ("Foo_Bar-1.0-py3-none-any.whl", ("foo-bar", "1.0", "wheel")),
        ("foo-2.0.0rc1-1-cp311-cp311-manylinux_2_17_x86_64.whl", ("foo", "2.0.0rc1", "wheel")),
        ("foo_bar-01.00.tar.gz", ("foo-bar", "1.0", "sdist")),
        ("foo-1.0.zip", ("foo", "1.0", "sdist")),
        ("foo-1.0-py3.8.egg", None),
        ("foo-latest.tar.gz", None),
        ("foo.exe", None),
    ],
)
def test_distribution_filenames(filename, parsed):
    result = parse_filename(filename)
    assert (None if result is None else (result.project, result.version, result.kind)) == parsed


def test_a_file_belongs_to_a_project_exactly_when_packaging_reads_it_so():
    names = ["foo", "Foo_Bar", "foo.bar", "foo-bar", "foo__bar", "foo_", "", "fo\u00f6", "bar"]
    versions = ["1.0", "01.00", "2.0.0rc1", "1.0.post1.dev2", "1.0a1", "1.0+local", "1..0", "v1", "latest"]
    versions += ["1.0-1", "\u0661.0", "1.0.", "1.0c1", "1!2.0", ""]
    tails = ["-py3-none-any.whl", "-1-py3-none-any.whl", "-x1-py3-none-any.whl", "-py2.py3-none-any.whl"]
    tails += ["-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "-3x-none-any.whl"]
    tails += ["-Py3-none-Any.whl", "-py3..py2-none-any.whl", "-py3-none-.whl", "-py3-none.whl", ".whl"]
    tails += ["-py3-none-any-extra-x.whl", ".tar.gz", ".zip", ".tar.bz2", "-py3.8.egg", "-py3-none-any.WHL"]
    projects = ["foo", "foo-bar", "fo\u00f6"]
    accepted = 0
    for name, version, tail, project in itertools.product(names, versions, tails, projects):
        filename = f"{name}-{version}{tail}"
        parsed = parse_filename(filename)
        expected = parsed is not None and parsed.project == project
        assert belongs(filename, project) is expected, filename
        accepted += expected
    assert accepted > 100  # both answers are exercised


def test_a_listed_file_is_named_by_the_last_segment_of_its_url_path():
    def expected(url: str) -> str:
        return unquote(urlsplit(url).path.rsplit("/", 1)[-1])

    parts = ["https:", "//", "host", "/", "f%2Bx.whl", "?q", "#f", "x:", " ", "\t", "[", "]", "\u00e9", ".."]
    for length in range(1, 5):
        for url in map("".join, itertools.product(parts, repeat=length)):
            try:
                wanted = expected(url)
            except ValueError:  # a broken IPv6 host: the page is refused either way
                with pytest.raises(ValueError):
                    _filename(url)
            else:
                assert _filename(url) == wanted, url


def test_plain_html_pages_are_read_as_html_parser_reads_them():
    """The regular-expression reading of plain simple pages finds exactly the start tags and attributes
    HTMLParser finds, on pages of the usual and of unusual pieces (those go to HTMLParser)."""

    def html_parser(doc: str) -> tuple[object, ...]:
        parser = _Anchors()
        parser.feed(doc)
        parser.close()
        return parser.anchors, parser.base, parser.tags

    names = ["a", "A", "br", "base", "html", "h1", "script", "style", "title", "textarea", "span"]
    attributes = [' href="f-1.0.tar.gz#sha256=ab"', ' HREF="../x.whl"', " data-yanked", ' data-yanked=""']
    attributes += [' data-requires-python="&gt;=3.8"', " href='single'", " href=bare", ' data-x="a>b"']
    attributes += [' href = "spaced"', '\n\tdata-dist-info-metadata="true"', ' href="&lt"']
    attributes += [' href="1" href="2"']
    texts = ["Links", " ", "\n", "&amp;", "x<y", "<", "< a>", "&", "\u00e9", "</a>", "</a >", "</title>"]
    texts += ["<!-- <a href='x'> -->", "<!DOCTYPE html>", "<!doctype html>", "<![CDATA[x]]>", "<?x ?>"]
    pick = random.Random(658)
    plain = 0
    for _ in range(4000):
        doc = ""
        for _ in range(pick.randint(0, 10)):
            if pick.random() < 0.5:
                doc += "<" + pick.choice(names) + "".join(pick.sample(attributes, pick.randint(0, 3)))
                doc += pick.choice([">", "/>", " />", "\n>"])
            else:
                doc += pick.choice(texts)
        read = _plain_anchors(doc)
        if read is not None:
            plain += 1
            assert read == html_parser(doc), doc
    assert plain > 300  # the regular expressions answered for a good share


# -- one model, two renderings ----------------------------------------------------------------------
WHEEL = DistFile(
    "foo-1.0-py3-none-any.whl",
    "http://proxy.test/pypi/dev/files/foo/foo-1.0-py3-none-any.whl",
    {"sha256": SHA_A},
    requires_python=">=3.8,<4",
    yanked='broken "build" <oops>',
    core_metadata={"sha256": SHA_B},
)
SDIST = DistFile("foo-1.0.tar.gz", "http://proxy.test/pypi/dev/files/foo/foo-1.0.tar.gz", {"sha256": SHA_C})
PAGE = ProjectPage("foo", (WHEEL, SDIST))


def test_html_rendering_escapes_and_carries_every_attribute():
    text = render_project(PAGE, "html").decode()
    assert '<meta name="pypi:repository-version" content="1.0">' in text
    assert f'href="{WHEEL.url}#sha256={SHA_A}"' in text
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in text
    assert 'data-yanked="broken &quot;build&quot; &lt;oops&gt;"' in text
    assert f'data-dist-info-metadata="sha256={SHA_B}" data-core-metadata="sha256={SHA_B}"' in text
    sdist_line = next(line for line in text.splitlines() if "foo-1.0.tar.gz</a>" in line)
    assert "data-" not in sdist_line and f"#sha256={SHA_C}" in sdist_line


def test_json_rendering_follows_pep_691():
    doc = json.loads(render_project(PAGE, "json"))
    assert doc["meta"] == {"api-version": "1.0"} and doc["name"] == "foo"
    wheel, sdist = doc["files"]
    assert wheel == {
        "filename": WHEEL.filename,
        "url": WHEEL.url,
        "hashes": {"sha256": SHA_A},
        "requires-python": ">=3.8,<4",
        "core-metadata": {"sha256": SHA_B},
        "dist-info-metadata": {"sha256": SHA_B},
        "yanked": 'broken "build" <oops>',
    }
    assert sdist == {
        "filename": SDIST.filename,
        "url": SDIST.url,
        "hashes": {"sha256": SHA_C},
        "yanked": False,
    }


def test_yanked_without_reason_and_metadata_without_hash():
    file = DistFile("foo-1.0.tar.gz", "u", {"sha256": SHA_A}, yanked="", core_metadata={})
    page = ProjectPage("foo", (file,))
    entry = json.loads(render_project(page, "json"))["files"][0]
    assert entry["yanked"] is True and entry["core-metadata"] is True
    html = render_project(page, "html").decode()
    assert 'data-yanked=""' in html and 'data-core-metadata="true"' in html


def test_project_list_in_both_renderings():
    assert json.loads(render_index(["b", "a", "b"], "json")) == {
        "meta": {"api-version": "1.0"},
        "projects": [{"name": "a"}, {"name": "b"}],
    }
    html = render_index(["a-b"], "html").decode()
    assert '<a href="a-b/">a-b</a>' in html


@given(
    requires_python=st.one_of(
        st.none(), st.text(min_size=1).filter(lambda t: t.strip() == t and "\x00" not in t)
    ),
    yanked=st.one_of(st.none(), st.text().filter(lambda t: "\x00" not in t and "\r" not in t)),
    metadata=st.one_of(st.none(), st.just({}), st.just({"sha256": SHA_B})),
)
def test_what_is_rendered_reads_back_the_same(requires_python, yanked, metadata):
    file = DistFile(
        "foo-1.0-py3-none-any.whl",
        "http://proxy.test/files/foo-1.0-py3-none-any.whl",
        {"sha256": SHA_A},
        requires_python,
        yanked,
        metadata,
    )
    page = ProjectPage("foo", (file,))
    assert parse_page(render_project(page, "json"), "foo") == [file]
    # HTML has no "yanked without a reason" distinct from an empty reason; both read back as "".
    assert parse_page(render_project(page, "html"), "foo") == [file]


# -- reading upstream pages -------------------------------------------------------------------------
def test_html_page_keeps_relative_urls_and_reads_pep_658_and_592():
    page = f"""<!DOCTYPE html><html><body>
<a href="../../packages/foo-1.0.tar.gz#SHA256={SHA_A.upper()}"
   data-requires-python="&gt;=3.9">foo-1.0.tar.gz</a>
<a href="https://files.example.com/foo-2.0-py3-none-any.whl#sha256={SHA_B}" data-dist-info-metadata="true"
   data-yanked>foo-2.0-py3-none-any.whl</a>
<a href="/other/bar-1.0.tar.gz#sha256={SHA_C}">bar-1.0.tar.gz</a>
<a href="foo-3.0.exe">installer</a>
<a>no href</a>
</body></html>"""
    files = parse_page(page.encode(), "foo")
    assert [(f.filename, f.url, f.hashes, f.requires_python, f.yanked, f.core_metadata) for f in files] == [
        ("foo-1.0.tar.gz", "../../packages/foo-1.0.tar.gz", {"sha256": SHA_A}, ">=3.9", None, None),
        (
            "foo-2.0-py3-none-any.whl",
            "https://files.example.com/foo-2.0-py3-none-any.whl",
            {"sha256": SHA_B},
            None,
            "",
            {},
        ),
    ]


def test_html_base_href_applies_and_core_metadata_name_wins():
    page = f"""<html><head><base href="https://mirror.example.com/root/"></head><body>
<a href="foo-1.0.tar.gz#sha256={SHA_A}" data-core-metadata="sha256={SHA_B}"
   data-dist-info-metadata="true">x</a>
</body></html>"""
    (file,) = parse_page(page.encode(), "foo")
    assert file.url == "https://mirror.example.com/root/foo-1.0.tar.gz"
    assert file.core_metadata == {"sha256": SHA_B}


def test_json_page_is_read():
    doc = {
        "meta": {"api-version": "1.1"},
        "name": "foo",
        "files": [
            {
                "filename": "foo-1.0-py3-none-any.whl",
                "url": "../../p/foo-1.0-py3-none-any.whl",
                "hashes": {"sha256": SHA_A, "blake2b_256": "ab" * 16},
                "requires-python": ">=3.10",
                "dist-info-metadata": {"sha256": SHA_B},
                "yanked": "bad",
                "size": 3,
            },
            {"filename": "foo-1.1.tar.gz", "url": "https://x.example.com/foo-1.1.tar.gz", "hashes": {}},
        ],
    }
    wheel, sdist = parse_page(json.dumps(doc).encode(), "foo")
    assert wheel == DistFile(
        "foo-1.0-py3-none-any.whl",
        "../../p/foo-1.0-py3-none-any.whl",
        {"sha256": SHA_A, "blake2b_256": "ab" * 16},
        ">=3.10",
        "bad",
        {"sha256": SHA_B},
    )
    assert sdist.hashes == {} and sdist.yanked is None and sdist.core_metadata is None


@pytest.mark.parametrize(
    "body",
    [
        b"\x89PNG\r\n\x1a\n\xff\xfe",  # not UTF-8
        b"Service temporarily unavailable",  # no markup at all
        b'{"name": "foo", "files": [',  # truncated JSON
        b'{"name": "foo"}',  # JSON without files
        b'{"files": [{"filename": "foo-1.0.tar.gz"}]}',  # a file without url
        f'<html><a href="foo-1.0.tar.gz#sha256={SHA_A[:10]}">x</a></html>'.encode(),  # malformed hash
        b'<html><a href="foo-1.0.tar.gz#sha256=zz">x</a></html>',
    ],
)
def test_broken_pages_are_refused(body):
    with pytest.raises(ValueError):
        parse_page(body, "foo")


def test_an_empty_html_page_is_a_page():
    assert parse_page(b"<!DOCTYPE html><html><body></body></html>", "foo") == []


# -- merging across the chain -----------------------------------------------------------------------
def offer(place: str, filename: str, sha: str | None, **kw) -> Offer:
    hashes = {"sha256": sha} if sha else {}
    return Offer(DistFile(filename, f"../../{filename}", hashes, **kw), Source(place, None, "simple/foo/"))


def asset(name: str, data: bytes) -> AssetRecord:
    return AssetRecord(name, len(data), f"blob-{name}", {"SHA-256": hashlib.sha256(data).hexdigest()})


def test_files_are_unioned_by_filename_and_the_first_place_wins():
    first = [offer("team", "foo-1.0.tar.gz", SHA_A, requires_python=">=3.8")]
    second = [
        offer("plain", "foo-1.0.tar.gz", SHA_B, yanked="x"),
        offer("plain", "foo-2.0.tar.gz", SHA_C),
    ]
    project = merge("foo", [first, second], {})
    assert list(project.offers) == ["foo-1.0.tar.gz", "foo-2.0.tar.gz"]
    winner = project.offers["foo-1.0.tar.gz"]
    assert winner.source.place == "team"
    assert winner.file.hashes == {"sha256": SHA_A} and winner.file.requires_python == ">=3.8"
    assert winner.file.yanked is None
    page = project.page(lambda name: f"http://proxy.test/pypi/dev/files/foo/{name}")
    assert [page.url(f) for f in page.files] == [
        "http://proxy.test/pypi/dev/files/foo/foo-1.0.tar.gz",
        "http://proxy.test/pypi/dev/files/foo/foo-2.0.tar.gz",
    ]


def test_held_wheel_completes_hash_and_metadata_only_when_it_is_the_listed_file():
    wheel = b"wheel bytes"
    held = {
        "foo-1.0-py3-none-any.whl": asset("foo-1.0-py3-none-any.whl", wheel),
        "foo-1.0-py3-none-any.whl.metadata": asset("m1", b"Metadata-Version: 2.1"),
        "foo-2.0-py3-none-any.whl": asset("foo-2.0-py3-none-any.whl", b"old bytes"),
        "foo-2.0-py3-none-any.whl.metadata": asset("m2", b"other"),
        "foo-3.0.tar.gz": asset("foo-3.0.tar.gz", b"sdist"),
        "foo-3.0.tar.gz.metadata": asset("m3", b"sdist metadata"),
    }
    sha = hashlib.sha256(wheel).hexdigest()
    answers = [
        [
            offer("plain", "foo-1.0-py3-none-any.whl", None),  # no hash listed: the held copy's
            offer("plain", "foo-2.0-py3-none-any.whl", SHA_A),  # another file than the one held
            offer("plain", "foo-3.0.tar.gz", None),  # an sdist never gets metadata it did not declare
            offer("plain", "foo-4.0-py3-none-any.whl", SHA_C, core_metadata={"sha256": SHA_B}),
        ]
    ]
    files = {name: o.file for name, o in merge("foo", answers, held).offers.items()}
    assert files["foo-1.0-py3-none-any.whl"].hashes == {"sha256": sha}
    assert files["foo-1.0-py3-none-any.whl"].core_metadata == {
        "sha256": held["foo-1.0-py3-none-any.whl.metadata"].hashes["SHA-256"]
    }
    assert files["foo-2.0-py3-none-any.whl"].core_metadata is None
    assert files["foo-3.0.tar.gz"].core_metadata is None
    assert files["foo-3.0.tar.gz"].hashes == {"sha256": hashlib.sha256(b"sdist").hexdigest()}
    assert files["foo-4.0-py3-none-any.whl"].core_metadata == {"sha256": SHA_B}


# -- catalog records --------------------------------------------------------------------------------
def published_record() -> PackageRecord:
    record = PackageRecord(coordinate("foo"), PUBLISHED_DEFAULT)
    for version, status in (("1.0", "Published"), ("1.1", "Unlisted"), ("0.9", "Archived")):
        wheel = asset(f"foo-{version}-py3-none-any.whl", version.encode())
        meta = asset(f"foo-{version}-py3-none-any.whl.metadata", b"m" + version.encode())
        sdist = asset(f"foo-{version}.tar.gz", b"s" + version.encode())
        sdist_meta = asset(f"foo-{version}.tar.gz.metadata", b"sm" + version.encode())
        record.versions[version] = PackageVersionRecord(
            version,
            PackageVersionOrigin("INTERNAL", "dev"),
            status=status,
            assets={a.name: a for a in (wheel, meta, sdist, sdist_meta)},
            metadata={
                "files": {
                    wheel.name: file_entry(">=3.8", True),
                    sdist.name: file_entry(None, False),
                }
            },
        )
    return record


def test_published_offers_follow_statuses_and_declared_metadata():
    offers = published_offers("dev", published_record())
    files = {o.file.filename: o.file for o in offers}
    assert list(files) == [
        "foo-1.0-py3-none-any.whl",
        "foo-1.0.tar.gz",
        "foo-1.1-py3-none-any.whl",
        "foo-1.1.tar.gz",
    ]
    assert all(o.source.place == "dev" and o.source.upstream is None for o in offers)
    assert files["foo-1.0-py3-none-any.whl"].requires_python == ">=3.8"
    assert files["foo-1.0-py3-none-any.whl"].core_metadata is not None
    assert files["foo-1.0.tar.gz"].core_metadata is None  # stored, not advertised
    assert files["foo-1.1-py3-none-any.whl"].yanked == "Unlisted"


def test_held_assets_skip_archived_versions_and_keep_the_first_record():
    record = published_record()
    cached = PackageRecord(coordinate("foo"), FETCHED_DEFAULT)
    cached.versions["1.0"] = PackageVersionRecord(
        "1.0",
        PackageVersionOrigin("EXTERNAL", "plain"),
        assets={"foo-1.0.tar.gz": asset("foo-1.0.tar.gz", b"x")},
    )
    held = held_assets([cached, record])
    assert held["foo-1.0.tar.gz"].size == 1  # the first record's
    assert "foo-0.9.tar.gz" not in held and "foo-1.1.tar.gz" in held
    assert find_held([record], "0.9", "foo-0.9.tar.gz") is None
    assert find_held([cached, record], "1.1", "foo-1.1.tar.gz") is not None


# -- core metadata ----------------------------------------------------------------------------------
async def stored(store: Store, data: bytes) -> BlobInfo:
    async with store.ingest() as writer:
        writer.write(data)
        return await writer.commit(published=False)


@pytest.fixture
def store(tmp_path: Path):
    opened = Store.open(CacheConfig(path=tmp_path / "cache", key_file=tmp_path / "key"))
    yield opened
    opened.close()


@pytest.mark.parametrize("payload_size", [0, 12 * 1024 * 1024])  # the second puts METADATA before the tail
async def test_metadata_is_taken_out_of_a_stored_wheel(store, payload_size):
    filename, data = make_wheel("Foo_Bar", "1.0", requires_dist=["baz>=2"], payload_size=payload_size)
    info = await stored(store, data)
    metadata = wheel_metadata(SeekableBlob(store.blobs, info.blob_id), filename)
    assert metadata == wheel_core_metadata(data)
    assert metadata_mismatch(metadata, "foo-bar", "1.0.0") is None
    assert "not foo-bar 2.0" in (metadata_mismatch(metadata, "foo-bar", "2.0") or "")


async def test_a_stored_file_that_is_no_wheel_gives_no_metadata(store):
    info = await stored(store, b"not a zip at all" * 100)
    with pytest.raises(ValueError, match="not a readable wheel"):
        wheel_metadata(SeekableBlob(store.blobs, info.blob_id), "foo-1.0-py3-none-any.whl")


def test_sdist_metadata_from_form_fields():
    fields = {
        "metadata_version": ["2.2"],
        "name": ["Foo"],
        "version": ["1.0"],
        "summary": ["one\nline"],
        "requires_dist": ["bar>=1", "baz; extra == 'x'"],
        "requires_python": [">=3.9"],
        "description": ["# Foo\n\nlong text"],
    }
    text = form_metadata(fields).decode()
    assert text.startswith("Metadata-Version: 2.2\nName: Foo\nVersion: 1.0\nSummary: one line\n")
    assert "Requires-Dist: bar>=1\nRequires-Dist: baz; extra == 'x'\nRequires-Python: >=3.9\n" in text
    assert text.endswith("\n\n# Foo\n\nlong text")
    assert metadata_mismatch(text.encode(), "foo", "1.0") is None
    assert sdist_metadata_is_static(fields)
    assert not sdist_metadata_is_static({**fields, "metadata_version": ["2.1"]})
    assert not sdist_metadata_is_static({**fields, "dynamic": ["Requires-Dist"]})
