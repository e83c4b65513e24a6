"""Settings: layering (defaults → file → secrets file → environment) and every validation message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kaalwatch.errors import ConfigError
from kaalwatch.settings import Settings, load_settings, render_default_config
from kaalwatch.settings_sources import env_name
from kaalwatch.vault import Secrets, secrets_dir

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str | None, env: dict[str, str] | None = None) -> Settings:
    path = None
    if text is not None:
        path = tmp_path / "config.yaml"
        path.write_text(text, encoding="utf-8")
    return load_settings(path, env=env or {}, use_default_path=False)


def test_defaults_without_any_file(tmp_path: Path) -> None:
    settings = load(tmp_path, None)
    assert settings.watcher.quiet_seconds == 2.0
    assert settings.workspace == Path("~/KaalOrders").expanduser()
    assert settings.etsy.base_url == "https://api.etsy.com"  # the real Etsy, never the sandbox, by default


def test_file_overrides_defaults_and_env_overrides_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "watcher:\n  quiet_seconds: 5\n  backend: polling\netsy:\n  base_url: http://127.0.0.1:1\n",
        {"KAALWATCH_WATCHER_QUIET_SECONDS": "7.5", "KAALWATCH_ETSY_SCOPES": "shops_r, listings_r"},
    )
    assert settings.watcher.quiet_seconds == 7.5
    assert settings.watcher.backend == "polling"  # from the file, untouched by env
    assert settings.etsy.base_url == "http://127.0.0.1:1"
    assert settings.etsy.scopes == ("shops_r", "listings_r")


def test_kaalwatch_config_env_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text("shop_name: Elsewhere\n", encoding="utf-8")
    settings = load_settings(None, env={"KAALWATCH_CONFIG": str(path)}, use_default_path=False)
    assert settings.shop_name == "Elsewhere"


def test_platform_config_dir_is_used_when_nothing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = tmp_path / "xdg" / "kaalwatch" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("shop_name: From XDG\n", encoding="utf-8")
    assert load_settings(None, env={}).shop_name == "From XDG"


def test_secrets_file_supplies_credentials_and_env_still_wins(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    path = Secrets(secrets_dir(workspace)).write_app_keys("key123", "secret456")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    text = f"workspace: {workspace}\n"
    settings = load(tmp_path, text)
    assert (settings.etsy.keystring, settings.etsy.shared_secret) == ("key123", "secret456")
    settings = load(tmp_path, text, {"KAALWATCH_ETSY_SHARED_SECRET": "fromenv"})
    assert settings.etsy.shared_secret == "fromenv"


def test_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    path = Secrets(secrets_dir(workspace)).write_app_keys("k", "s")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"readable by others .*chmod 600"):
        load(tmp_path, f"workspace: {workspace}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("watcher:\n  quiet_secs: 3\n",
         r"config.yaml: unknown setting 'watcher.quiet_secs' \(did you mean 'quiet_seconds'\?\)"),
        ("bogus: 1\n", r"unknown setting 'bogus' \(known: workspace,"),
        ("watcher:\n  quiet_seconds: soon\n", r"watcher.quiet_seconds: expected a number ≥ 0, got 'soon'"),
        ("watcher:\n  quiet_seconds: -1\n", r"watcher.quiet_seconds: expected a number ≥ 0, got -1"),
        ("watcher:\n  backend: magic\n", r"watcher.backend: expected one of auto, native, polling, got 'magic'"),
        ("review:\n  port: 70000\n", r"review.port: expected a whole number from 0 to 65535, got 70000"),
        ("review:\n  port: 80.5\n", r"review.port: expected a whole number"),
        ("review:\n  require_password: yes please\n", r"review.require_password: expected true or false"),
        ("preview:\n  background: white\n", r"preview.background: expected a colour like #ffffff, got 'white'"),
        ("etsy:\n  scopes: shops_r\n", r"etsy.scopes: expected a list"),
        ("watcher: 3\n", r"config.yaml: watcher: expected a mapping of settings, got 3"),
        ("workflows:\n  - name: x\n    title_pattern: '('\n",
         r"workflows\[0\].title_pattern: expected a valid regular expression"),
        ("workflows:\n  - name: x\n    deliverables:\n      - format: gif\n",
         r"workflows\[0\].deliverables\[0\].format: expected one of png, jpeg, tiff, pdf, got 'gif'"),
        ("workflows:\n  - name: x\n    deliverables:\n      - aspect: square\n",
         r"workflows\[0\].deliverables\[0\].aspect: expected a value like 4:5"),
        ("workspace: ''\n", r"workspace: expected a folder path"),
        ("watcher:\n  quiet_seconds: [\n", r"config.yaml: line \d+: "),
        ("- just\n- a list\n", r"\(top level\): expected a mapping of settings"),
    ],
)
def test_each_wrong_value_gets_one_line_naming_file_key_and_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load(tmp_path, text)
    assert "\n" not in str(info.value)
    assert str(tmp_path / "config.yaml") in str(info.value)


def test_wrong_environment_value_names_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^environment: watcher.quiet_seconds: expected a number"):
        load(tmp_path, None, {"KAALWATCH_WATCHER_QUIET_SECONDS": "abc"})


def test_missing_named_file_is_an_error_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"file not found \(run `kaalwatch init` or pass --config\)"):
        load_settings(tmp_path / "nope.yaml", env={}, use_default_path=False)


def test_every_setting_has_an_environment_name() -> None:
    assert env_name("etsy.base_url") == "KAALWATCH_ETSY_BASE_URL"
    assert env_name("workspace") == "KAALWATCH_WORKSPACE"


def test_committed_config_yaml_is_the_documented_defaults() -> None:
    """config.yaml is generated from the declarations; regenerate it when a setting changes."""
    assert (REPO / "config.yaml").read_text(encoding="utf-8") == render_default_config()


def test_documented_default_file_loads_to_the_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, render_default_config()) == Settings(workspace=Path("~/KaalOrders").expanduser())
