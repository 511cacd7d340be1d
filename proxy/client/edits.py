"""Edits of the clients' own configuration files, as text: every line ``login`` does not own is kept as
it was (comments, order, other settings), and applying an edit twice gives the same text as once.

Each function takes the file's current text (``None`` when the file does not exist) and returns the new
text, or raises ``EditError`` when the file cannot be understood (so nothing is written).
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from collections.abc import Mapping
from urllib.parse import urlsplit

import yaml
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

# The id login gives its Maven mirror, server and profile, and the name of its uv index and twine
# repository; logout and a second login recognise their own entries by it.
ENTRY_ID = "codeartifact-proxy"
TWINE_REPOSITORY = "codeartifact"


class EditError(Exception):
    """A configuration file that cannot be edited safely; the message says why."""


def _lines(text: str | None) -> list[str]:
    return (text or "").splitlines()


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


# npm, pnpm and yarn 1: ~/.npmrc, "key=value" lines ------------------------------------------------


def npmrc(text: str | None, registry_url: str, token: str) -> str:
    """``registry`` and the registry's ``//host/path/:_authToken`` set; every other line kept."""
    auth_key = f"//{registry_url.split('://', 1)[1]}:_authToken"
    return _npmrc_set(text, {"registry": registry_url, auth_key: token})


def _npmrc_set(text: str | None, values: Mapping[str, str]) -> str:
    kept: list[str] = []
    done: set[str] = set()
    for line in _lines(text):
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in values and not line.lstrip().startswith(("#", ";")):
            if key not in done:  # a repeated key: npm reads the last, login leaves one
                kept.append(f"{key}={values[key]}")
                done.add(key)
            continue
        kept.append(line)
    kept += [f"{key}={value}" for key, value in values.items() if key not in done]
    return _join(kept)


# yarn 2 and later: ~/.yarnrc.yml ------------------------------------------------------------------

_YARN_BEGIN = f"# {ENTRY_ID} login: begin"
_YARN_END = f"# {ENTRY_ID} login: end"
_YARN_KEYS = ("npmRegistryServer", "npmAuthToken", "npmAlwaysAuth", "unsafeHttpWhitelist")
_YAML_KEY = re.compile(r"([A-Za-z0-9_]+)\s*:")


def yarnrc_yml(text: str | None, registry_url: str, token: str) -> str:
    """``npmRegistryServer``, ``npmAuthToken`` and ``npmAlwaysAuth`` (the token on every request, reads
    too, as a daemon closed to anonymous clients needs), and, for an ``http:`` URL, its host added to
    ``unsafeHttpWhitelist`` (yarn refuses plain HTTP elsewhere), in one block; the file's other
    settings are kept as they were. The file is read with a YAML parser before and after (a file it
    cannot read, or an edit that does not read back as intended, is refused, nothing written)."""
    before = _yaml(text)
    values: dict[str, object] = {
        "npmRegistryServer": registry_url,
        "npmAuthToken": token,
        "npmAlwaysAuth": True,
    }
    host = urlsplit(registry_url).hostname if registry_url.startswith("http:") else None
    allowed = before.get("unsafeHttpWhitelist")
    allowed = [str(h) for h in allowed] if isinstance(allowed, list) else []
    if host is not None:
        values["unsafeHttpWhitelist"] = allowed if host in allowed else [*allowed, host]
    lines = _remove_block(_lines(text), _YARN_BEGIN, _YARN_END)
    lines = _without_top_level(lines, set(values))
    while lines and not lines[-1].strip():
        lines.pop()
    block = [_YARN_BEGIN, *(f"{key}: {json.dumps(value)}" for key, value in values.items()), _YARN_END]
    after = _join([*lines, *([""] if lines else []), *block])
    read_back = _yaml(after)
    expected = {**{k: v for k, v in before.items() if k not in values}, **values}
    if read_back != expected:
        raise EditError(".yarnrc.yml could not be edited safely (its layout is not one login can change)")
    return after


def _yaml(text: str | None) -> dict[str, object]:
    try:
        data = yaml.safe_load(text or "") or {}
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise EditError(f".yarnrc.yml is not valid YAML: {problem}{where}") from None
    if not isinstance(data, dict):
        raise EditError(".yarnrc.yml does not hold a mapping of settings")
    return data


def _without_top_level(lines: list[str], keys: set[str]) -> list[str]:
    """``lines`` without the top-level entries of ``keys``: the key's line and the lines of its value
    (indented, or ``- `` items at the key's level). Blank lines and comments are kept."""
    kept: list[str] = []
    dropping = False
    for line in lines:
        if not line.strip() or line.startswith("#"):
            kept.append(line)
            continue
        if line[0] not in " \t-":  # a top-level key
            match = _YAML_KEY.match(line)
            dropping = match is not None and match[1] in keys
        if not dropping:
            kept.append(line)
    return kept


# pip.conf and .pypirc: INI ----------------------------------------------------------------------


def _ini_key(line: str) -> str | None:
    if not line or line[0] in " \t#;[":
        return None
    match = re.match(r"([^=:]+?)\s*[=:]", line)
    return match[1].strip().lower().replace("_", "-") if match else None


def ini_set(text: str | None, section: str, values: Mapping[str, str]) -> str:
    """``values`` set in ``[section]`` (replacing a key's continuation lines too), the section appended
    when missing; keys compare as pip and configparser do (case and ``_``/``-`` alike)."""
    lines = _lines(text)
    wanted = {key.lower().replace("_", "-"): (key, value) for key, value in values.items()}
    start = next((i for i, line in enumerate(lines) if line.strip() == f"[{section}]"), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        return _join([*lines, f"[{section}]", *(f"{k} = {v}" for k, v in values.items())])
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    body, done, skipping = [], set(), False
    for line in lines[start + 1 : end]:
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue  # a continuation line of a value being replaced
        skipping = False
        key = _ini_key(line)
        if key in wanted:
            skipping = True
            if key not in done:
                done.add(key)
                body.append(f"{wanted[key][0]} = {wanted[key][1]}")
            continue
        body.append(line)
    last = max((i for i, line in enumerate(body) if line.strip()), default=-1)
    missing = [f"{k} = {v}" for norm, (k, v) in wanted.items() if norm not in done]
    body[last + 1 : last + 1] = missing
    return _join([*lines[: start + 1], *body, *lines[end:]])


def _parse_ini(text: str | None, name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text or "")
    except configparser.Error as error:
        raise EditError(f"{name} is not a valid INI file: {error.message}") from None
    return parser


def pip_conf(text: str | None, index_url: str) -> str:
    """pip's ``[global] index-url``."""
    _parse_ini(text, "pip.conf")
    return ini_set(text, "global", {"index-url": index_url})


def pypirc(text: str | None, repository_url: str, username: str, password: str) -> str:
    """A ``[codeartifact]`` repository added to ``[distutils] index-servers`` (as ``aws codeartifact
    login --tool twine`` writes it), so ``twine upload --repository codeartifact`` uses it."""
    parser = _parse_ini(text, ".pypirc")
    servers = parser.get("distutils", "index-servers", fallback="pypi").split()
    if TWINE_REPOSITORY not in servers:
        servers.append(TWINE_REPOSITORY)
    text = ini_set(text, "distutils", {"index-servers": " ".join(servers)})
    return ini_set(
        text,
        TWINE_REPOSITORY,
        {"repository": repository_url, "username": username, "password": password},
    )


# uv: uv.toml, one [[index]] block between markers -------------------------------------------------

_UV_BEGIN = f"# {ENTRY_ID} login: begin"
_UV_END = f"# {ENTRY_ID} login: end"


def uv_toml(text: str | None, index_url: str) -> str:
    """A default ``[[index]]`` named ``codeartifact-proxy``; arrays of tables go last in the file."""
    try:
        tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as error:
        raise EditError(f"uv.toml is not valid TOML: {error}") from None
    lines = _remove_block(_lines(text), _UV_BEGIN, _UV_END)
    while lines and not lines[-1].strip():
        lines.pop()
    block = [
        _UV_BEGIN,
        "[[index]]",
        f'name = "{ENTRY_ID}"',
        f'url = "{index_url}"',
        "default = true",
        _UV_END,
    ]
    return _join([*lines, *([""] if lines else []), *block])


def _remove_block(lines: list[str], begin: str, end: str) -> list[str]:
    if begin not in lines:
        return lines
    first = lines.index(begin)
    last = lines.index(end, first) if end in lines[first:] else len(lines) - 1
    return lines[:first] + lines[last + 1 :]


# Maven: ~/.m2/settings.xml ------------------------------------------------------------------------

_EMPTY_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
</settings>
"""


def _maven_entries(url: str, username: str, password: str) -> dict[str, str]:
    """The elements login adds, by the container they go in."""
    repository = (
        "<id>central</id><url>http://mirrored.invalid/</url>"
        "<releases><enabled>true</enabled></releases><snapshots><enabled>true</enabled></snapshots>"
    )
    return {
        "mirrors": f"<mirror><id>{ENTRY_ID}</id><mirrorOf>*</mirrorOf><url>{_xml(url)}</url></mirror>",
        "servers": (
            f"<server><id>{ENTRY_ID}</id><username>{_xml(username)}</username>"
            f"<password>{_xml(password)}</password><configuration><httpConfiguration><all>"
            "<usePreemptive>true</usePreemptive></all></httpConfiguration></configuration></server>"
        ),
        # Maven's built-in central takes no SNAPSHOTs and its mirror inherits that: declared again with
        # SNAPSHOTs on (the URL is never used, the mirror stands in for it).
        "profiles": (
            f"<profile><id>{ENTRY_ID}</id><repositories><repository>{repository}</repository>"
            f"</repositories><pluginRepositories><pluginRepository>{repository}</pluginRepository>"
            "</pluginRepositories></profile>"
        ),
        "activeProfiles": f"<activeProfile>{ENTRY_ID}</activeProfile>",
    }


def _xml(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_OWN = {
    "mirrors": re.compile(rf"\s*<mirror><id>{ENTRY_ID}</id>.*?</mirror>", re.S),
    "servers": re.compile(rf"\s*<server><id>{ENTRY_ID}</id>.*?</server>", re.S),
    "profiles": re.compile(rf"\s*<profile><id>{ENTRY_ID}</id>.*?</profile>", re.S),
    "activeProfiles": re.compile(rf"\s*<activeProfile>{ENTRY_ID}</activeProfile>"),
}


def maven_settings(text: str | None, url: str, username: str, password: str) -> str:
    """A ``<mirror>`` of ``*`` first in ``<mirrors>`` (Maven takes the first match), a ``<server>``
    with the credentials (preemptive, so reads cost no 401 round trips), and an active profile that
    re-declares ``central`` with SNAPSHOTs on. A ``mvn deploy`` uses the credentials when the
    project's ``distributionManagement`` repository has ``<id>codeartifact-proxy</id>``."""
    text = text if text and text.strip() else _EMPTY_SETTINGS
    _check_settings(text)
    for pattern in _OWN.values():
        text = pattern.sub("", text)
    for container, entry in _maven_entries(url, username, password).items():
        text = _insert_first(text, container, entry)
    _check_settings(text)
    return text


def _check_settings(text: str) -> None:
    try:
        root = ElementTree.fromstring(text.encode())
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise EditError(f"settings.xml is not well-formed XML: {error}") from None
    if root.tag.rsplit("}", 1)[-1] != "settings":
        raise EditError(f"settings.xml has <{root.tag}> at its root, not <settings>")


def _outside_comments(text: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
    comments = [m.span() for m in re.finditer(r"<!--.*?-->", text, re.S)]
    for match in pattern.finditer(text):
        if not any(start <= match.start() < end for start, end in comments):
            return match
    return None


def _insert_first(text: str, container: str, entry: str) -> str:
    empty = _outside_comments(text, re.compile(rf"<{container}\s*/>"))
    if empty:
        return f"{text[: empty.start()]}<{container}>\n    {entry}\n  </{container}>{text[empty.end() :]}"
    opening = _outside_comments(text, re.compile(rf"<{container}(\s[^>]*)?>"))
    if opening:
        return f"{text[: opening.end()]}\n    {entry}{text[opening.end() :]}"
    closing = text.rindex("</settings>")  # the document parsed with <settings> at its root
    return f"{text[:closing]}  <{container}>\n    {entry}\n  </{container}>\n{text[closing:]}"
