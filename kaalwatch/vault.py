"""The workspace's secrets folder and everything in it: 0700, every file 0600, whatever the umask or the
``private_files`` setting.

``.kaalwatch/secrets/`` holds the Etsy app keys (``app.yaml``), the OAuth tokens (``etsy_tokens.json``),
the review page's password hash (``review_password``) and its sessions database (``sessions.sqlite``),
the retention pseudonym salt (``pseudonym_salt``) and retention's hashed memory of each buyer
(``retention/<receipt>.json``). :class:`Secrets` names every one of these files and is the one place that
makes the folder private. (Named ``vault`` because ``secrets`` is the standard library's module.)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from kaalwatch.atomic import atomic_write_text
from kaalwatch.errors import WorkspaceError

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def secrets_dir(workspace: Path) -> Path:
    """The secrets folder of the workspace at ``workspace`` (settings read the app keys before a
    :class:`~kaalwatch.store.Workspace` exists)."""
    return workspace / ".kaalwatch" / "secrets"


def app_keys_path(workspace: Path) -> Path:
    return secrets_dir(workspace) / "app.yaml"


class Secrets:
    """The secrets folder ``folder``: the path of each secret, private writes, the salt made once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.app_keys_path = folder / "app.yaml"
        self.tokens_path = folder / "etsy_tokens.json"
        self.password_path = folder / "review_password"
        self.sessions_path = folder / "sessions.sqlite"
        self.salt_path = folder / "pseudonym_salt"
        self.terms_dir = folder / "retention"

    def terms_path(self, receipt_id: int) -> Path:
        """Retention's hashed memory of what identified one order's buyer."""
        return self.terms_dir / f"{int(receipt_id)}.json"

    def ensure(self, folder: Path | None = None) -> Path:
        """Create the secrets folder (or ``folder`` inside it); it and every folder between are 0700.

        The one place the secrets folder is made private, for every writer, whatever the umask.
        """
        target = folder or self.folder
        if target != self.folder and self.folder not in target.parents:
            raise ValueError(f"{target} is not inside {self.folder}")
        target.mkdir(parents=True, exist_ok=True)
        for path in (target, *target.parents):
            os.chmod(path, FOLDER_MODE)
            if path == self.folder:
                break
        return target

    def write_text(self, path: Path, text: str) -> None:
        """Replace the secret file ``path`` atomically, 0600, in a 0700 folder."""
        self.ensure(path.parent)
        atomic_write_text(path, text, mode=FILE_MODE)

    def create_file(self, path: Path) -> bool:
        """Create the empty secret file ``path`` (0600) unless it exists; True when it was created."""
        self.ensure(path.parent)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        except FileExistsError:
            return False
        return True

    def write_app_keys(self, keystring: str, shared_secret: str) -> Path:
        """Store the Etsy app credentials (read back by :func:`kaalwatch.settings.load_settings`)."""
        self.write_text(self.app_keys_path, yaml.safe_dump({"keystring": keystring, "shared_secret": shared_secret}))
        return self.app_keys_path

    def salt(self) -> str:
        """The workspace's secret salt for pseudonyms and term hashes, made once so both stay stable.

        Created exclusively (``O_EXCL``), not replaced: two first runs at once cannot make two salts.
        """
        self.ensure()
        try:
            fd = os.open(self.salt_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            salt = self.salt_path.read_text(encoding="ascii").strip()
            if not salt:
                raise WorkspaceError(f"{self.salt_path} is empty",
                                     hint="restore it from a backup; pseudonyms depend on it") from None
            return salt
        salt = secrets.token_hex(32)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(salt + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return salt

    def signature(self) -> tuple[tuple[str, int], ...]:
        """Names and change times of the folder's files: `kaalwatch auth` rewriting one changes it."""
        try:
            return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.folder.iterdir()))
        except OSError:
            return ()
