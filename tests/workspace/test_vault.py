"""The secrets folder: 0700 and every file in it 0600 after the day's writers ran, even with
``private_files: false`` under umask 022 (where the rest of the workspace follows the umask)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from kaalwatch import private
from kaalwatch.etsy.tokens import Tokens, TokenStore
from kaalwatch.retention import terms
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.vault import Secrets
from review_app import create_app, security
from tests.support.umask import umask


def modes(root: Path) -> dict[str, int]:
    return {path.relative_to(root).as_posix() or ".": stat.S_IMODE(path.lstat().st_mode)
            for path in [root, *root.rglob("*")]}


def test_every_secret_is_private_even_when_private_files_is_off(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(private._modes, "file", 0o644)  # what private_files: false gives under umask 022
    monkeypatch.setattr(private._modes, "dir", 0o755)
    with umask(0o022):
        ws = Workspace(settings)
        ws.create()
        ws.secrets.write_app_keys("keystring", "shared")  # `kaalwatch auth`
        TokenStore(ws).save(Tokens("1.access", "1.refresh", time.time() + 3600, time.time()))
        security.set_password(ws, "a fine password")  # `kaalwatch set-password`
        client = create_app(settings, ws, {"TESTING": True}).test_client()
        assert client.get("/login").status_code == 200  # a session row (the login form's CSRF token)
        salt = ws.secrets.salt()  # the first retention run
        terms.save(ws, 1234, terms.TermMemory(salt, {"hash"}))
        ws.close()
    found = modes(ws.secrets_dir)
    assert {"app.yaml", "etsy_tokens.json", "review_password", "sessions.sqlite", "pseudonym_salt",
            "retention", "retention/1234.json"} <= set(found)
    loose = {name: oct(mode) for name, mode in found.items()
             if mode != (0o700 if (ws.secrets_dir / name).is_dir() else 0o600)}
    assert loose == {}
    assert stat.S_IMODE(ws.orders_dir.stat().st_mode) == 0o755  # the setting is honoured elsewhere


def test_a_secrets_folder_made_loose_by_hand_is_private_again_on_the_next_write(tmp_path: Path) -> None:
    vault = Secrets(tmp_path / "secrets")
    vault.ensure()
    os.chmod(vault.folder, 0o755)
    vault.write_text(vault.password_path, "hash\n")
    assert stat.S_IMODE(vault.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(vault.password_path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="not inside"):
        vault.ensure(tmp_path / "elsewhere")
