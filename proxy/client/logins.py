"""What ``login`` changed, so ``logout`` can give it back byte for byte.

Before login first changes a file that exists, it copies it beside itself as
``NAME.codeartifact-proxy.bak`` (once: a later login never overwrites that copy). A record per file in
``$XDG_CONFIG_HOME/codeartifact-proxy/logins.json`` says whether login created the file, where the
backup is, and the SHA-256 of what login last wrote. ``logout`` puts the backup back (or removes a file
login created); a file changed since login is first kept as ``NAME.codeartifact-proxy.after-login``, so
nothing is lost. Files are replaced atomically (temporary file, rename). One command at a time is
assumed; two logins racing on one file could record the wrong backup.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

BACKUP_SUFFIX = ".codeartifact-proxy.bak"
AFTER_LOGIN_SUFFIX = ".codeartifact-proxy.after-login"


def config_home() -> Path:
    """``$XDG_CONFIG_HOME`` or ``~/.config``: where pip and uv look too."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def state_file() -> Path:
    return config_home() / "codeartifact-proxy" / "logins.json"


@dataclass(frozen=True)
class Undo:
    """What logout did to one file, for its message."""

    path: Path
    removed: bool  # login had created it
    kept_changes: Path | None  # where changes made after login were kept


def _read_state() -> dict[str, dict]:
    try:
        return json.loads(state_file().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise OSError(f"cannot read {state_file()}: {error}") from None


def _write_state(state: dict[str, dict]) -> None:
    if state:
        write_atomic(state_file(), json.dumps(state, indent=2, sort_keys=True).encode() + b"\n", 0o600)
    else:
        state_file().unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` by rename; keep the old file's permissions, else ``mode``. A
    symbolic link (dotfiles kept in a repository) stays a link: the file it points to is replaced."""
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600 if mode is None else mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_and_write(path: Path, data: bytes, tool: str) -> Path | None:
    """Write ``data`` to ``path`` for ``tool``'s login, backing the original up first (once); returns
    the backup's path, or ``None`` when login created the file."""
    state = _read_state()
    entry = state.get(str(path))
    if entry is None:
        existed = path.exists()
        backup = path.with_name(path.name + BACKUP_SUFFIX) if existed else None
        if backup is not None and not backup.exists():
            shutil.copy2(path, backup)
        entry = {"created": not existed, "backup": str(backup) if backup else None, "tools": []}
    write_atomic(path, data)
    entry["written_sha256"] = hashlib.sha256(data).hexdigest()
    entry["tools"] = sorted({*entry["tools"], tool})
    state[str(path)] = entry
    _write_state(state)
    return Path(entry["backup"]) if entry["backup"] else None


def logged_in_tools(path: Path) -> list[str]:
    return list(_read_state().get(str(path), {}).get("tools", []))


def undo(path: Path) -> Undo | None:
    """Put ``path`` back as it was before the first login; ``None`` when login never changed it."""
    state = _read_state()
    entry = state.get(str(path))
    if entry is None:
        return None
    kept = None
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() != entry["written_sha256"]:
        kept = path.with_name(path.name + AFTER_LOGIN_SUFFIX)
        shutil.copy2(path, kept)
    if entry["created"]:
        path.unlink(missing_ok=True)
    else:
        backup = Path(entry["backup"])
        write_atomic(path, backup.read_bytes())
        shutil.copystat(backup, path)
        backup.unlink()
    del state[str(path)]
    _write_state(state)
    return Undo(path, entry["created"], kept)
