"""Reading an npm publish body as it streams in: the packument goes to a skeleton document, parsed at
the end; the base64 tarballs (``_attachments.<name>.data``) are decoded as they arrive and handed on
in pieces, never held whole.

The document may come in any key order (``_attachments`` before ``versions``) and hold several
attachments. The packument without its tarballs is capped at ``MAX_PUBLISH_DOCUMENT`` bytes (413 past
it): real ones are a few KB to a few MB (the readme is the large part), so the cap only stops a body
that hides its bulk outside the tarballs. Nesting deeper than ``MAX_DEPTH`` is refused (400).

Concurrency: one ``PublishBody`` per request, fed from one thread at a time.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager

from proxy.formats.common.json_split import JsonSplitError, JsonSplitter, Path, SkeletonTooLarge, TooDeep
from proxy.repository.errors import Refused as PublishRefused

MAX_PUBLISH_DOCUMENT = 32 * 1024**2
MAX_DEPTH = 256


def _is_tarball(path: Path) -> bool:
    return len(path) == 3 and path[0] == "_attachments" and isinstance(path[1], str) and path[2] == "data"


class Base64Tarball:
    """One attachment's ``data`` string, base64-decoded as it arrives (a ``StringSink``): ``pending``
    collects the decoded bytes until ``take``. Strict base64 as ``b64decode(validate=True)`` reads it:
    the alphabet only, padding only at the very end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._rest = ""  # the start of a 4-character group the next piece completes
        self._padded = False
        self._pending: list[bytes] = []

    def write(self, text: str) -> None:
        text = self._rest + text
        whole = len(text) - len(text) % 4
        if self._padded and text:
            self._invalid()
        try:
            self._pending.append(base64.b64decode(text[:whole], validate=True))
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            self._invalid()
        self._padded = text[whole - 1 : whole] == "="
        self._rest = text[whole:]
        if self._padded and self._rest:
            self._invalid()

    def close(self) -> None:
        if self._rest:
            self._invalid()

    def take(self) -> bytes:
        """The bytes decoded since the last ``take``."""
        data = b"".join(self._pending)
        self._pending.clear()
        return data

    def _invalid(self) -> None:
        raise PublishRefused(400, f"the tarball {self.name!r} (_attachments) is not valid base64")


class PublishBody:
    """``feed`` the body's chunks (each answers the tarball bytes decoded from it, by attachment index,
    in order), then ``finish`` for the parsed packument, whose ``_attachments.<name>.data`` values are
    attachment indexes as strings (see ``proxy.formats.common.json_split.placeholder``). Raises
    PublishRefused: 400 for a body that is not a publish document, 413 for an oversized packument."""

    def __init__(self, max_document: int = MAX_PUBLISH_DOCUMENT) -> None:
        self.tarballs: list[Base64Tarball] = []
        self._max_document = max_document
        self._splitter = JsonSplitter(self._extract, max_skeleton=max_document, max_depth=MAX_DEPTH)

    def _extract(self, path: Path) -> Base64Tarball | None:
        if not _is_tarball(path):
            return None
        self.tarballs.append(Base64Tarball(str(path[1])))
        return self.tarballs[-1]

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        with _refusals(self._max_document):
            self._splitter.feed(chunk)
        decoded = ((index, tarball.take()) for index, tarball in enumerate(self.tarballs))
        return [(index, data) for index, data in decoded if data]

    def finish(self) -> object:
        with _refusals(self._max_document):
            skeleton = self._splitter.finish()
            try:
                return json.loads(skeleton.decode("utf-8", "surrogatepass"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise JsonSplitError(str(exc)) from None
            except RecursionError:  # MAX_DEPTH keeps below the parser's limit; this is a backstop
                raise TooDeep() from None


@contextmanager
def _refusals(max_document: int) -> Iterator[None]:
    """Turns the splitter's errors into the client's 400 and 413."""
    try:
        yield
    except TooDeep:
        raise PublishRefused(400, "the publish request is nested too deeply") from None
    except JsonSplitError as exc:
        raise PublishRefused(400, f"the publish request is not a JSON document: {exc}") from None
    except SkeletonTooLarge:
        raise PublishRefused(
            413, f"the publish document without its tarballs is over {max_document} bytes; nothing was stored"
        ) from None
