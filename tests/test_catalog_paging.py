"""Paged package listings (``Catalog.package_page``) and the sealed tokens that carry their position."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.api.errors import ApiError
from proxy.api.paging import make_token, open_token
from proxy.store.catalog import LISTING_SHARDS, Catalog, PackageCoordinate
from proxy.store.keyring import KeyRing


def _catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "catalog", KeyRing.load(tmp_path / "cache.key"))


def _add(catalog: Catalog, *names: str) -> None:
    for name in names:
        catalog.update_package("dev", PackageCoordinate("npm", "", name), lambda record: None)


def _all_pages(catalog: Catalog, size: int) -> list[list[PackageCoordinate]]:
    pages, cursor = [], None
    while True:
        page, cursor = catalog.package_page("dev", cursor, size, lambda c: True)
        pages.append(page)
        if cursor is None:
            return pages


def test_pages_cover_every_package_once(tmp_path):
    catalog = _catalog(tmp_path)
    names = [f"pkg-{i}" for i in range(40)]
    _add(catalog, *names)
    pages = _all_pages(catalog, 7)
    assert all(len(page) == 7 for page in pages[:-1]) and len(pages) >= 6
    listed = [c.name for page in pages for c in page]
    assert sorted(listed) == sorted(names)


def test_a_page_reads_the_shards_it_needs_not_the_whole_repository(tmp_path, monkeypatch):
    catalog = _catalog(tmp_path)
    _add(catalog, *(f"pkg-{i}" for i in range(200)))
    reads = []
    original = catalog._get
    monkeypatch.setattr(catalog, "_get", lambda *key: reads.append(key) or original(*key))
    page, cursor = catalog.package_page("dev", None, 5, lambda c: True)
    assert len(page) == 5 and cursor is not None
    assert 0 < len(reads) < LISTING_SHARDS // 4  # 200 packages over 1,024 shards: a few dozen reads


def test_changes_between_pages_neither_repeat_nor_skip_the_others(tmp_path):
    catalog = _catalog(tmp_path)
    names = [f"pkg-{i}" for i in range(30)]
    _add(catalog, *names)
    seen: list[str] = []
    page, cursor = catalog.package_page("dev", None, 10, lambda c: True)
    seen += [c.name for c in page]
    catalog.delete_package("dev", page[-1])  # the entry the cursor points after
    catalog.delete_package("dev", page[0])
    while cursor is not None:
        page, cursor = catalog.package_page("dev", cursor, 10, lambda c: True)
        seen += [c.name for c in page]
    assert sorted(seen) == sorted(names)


def test_a_token_opens_only_for_its_query_and_unaltered(tmp_path):
    keyring = KeyRing.load(tmp_path / "cache.key")
    query = {"op": "ListPackages", "repository": "dev", "prefix": ""}
    token = make_token(keyring, query, [12, ["npm", "", "pkg-3"]])
    assert open_token(keyring, query, token) == [12, ["npm", "", "pkg-3"]]
    assert open_token(keyring, query, None) is None
    for bad_query, bad_token in (
        ({**query, "prefix": "x"}, token),
        (query, token[:-2] + ("AA" if not token.endswith("AA") else "BB")),
        (query, "%%%"),
    ):
        with pytest.raises(ApiError) as refused:
            open_token(keyring, bad_query, bad_token)
        assert refused.value.code == "ValidationException"
    other = KeyRing.load(tmp_path / "other.key")
    with pytest.raises(ApiError):
        open_token(other, query, token)
