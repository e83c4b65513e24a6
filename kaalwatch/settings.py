"""Typed settings: every setting declared once with its default and help, loaded and validated once.

Order of precedence, lowest first: the defaults declared here → the user's YAML file (``--config``, else
``KAALWATCH_CONFIG``, else the platform's config folder) → the secrets file ``.kaalwatch/secrets/app.yaml``
in the workspace (mode 0600; Etsy credentials can live there instead of in the config) → environment
variables ``KAALWATCH_<SECTION>_<KEY>`` (``KAALWATCH_ETSY_BASE_URL``, ``KAALWATCH_WORKSPACE``…).

Any wrong key, type or value raises :class:`~kaalwatch.errors.ConfigError` with one line naming the
source, the key and what is expected. The top-level ``config.yaml`` is generated from these declarations
(:func:`render_default_config`), and a test keeps the two identical.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict

from kaalwatch import settings_sources as sources
from kaalwatch.errors import ConfigError
from kaalwatch.vault import app_keys_path

# Notification URLs carry the services' tokens (a Telegram bot token, an SMTP password).
SECRET_KEYS = frozenset({"etsy.keystring", "etsy.shared_secret", "notify.urls"})


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field carrying its one-line help (used for config.yaml and validation messages).

    ``min``/``max``, ``choices``, ``pattern`` (with an ``example``) and ``colour`` are also given to pydantic
    in its own words (``ge``, ``le``, ``pattern``), which it reads from a dataclass field's metadata; true
    or false and numbers are strict (``yes please`` is not true, ``"5"`` is not a number).
    """
    if isinstance(default, list | dict):
        raise TypeError("use tuples for list defaults so settings stay immutable")
    rules: dict[str, Any] = {"strict": True} if isinstance(default, bool | int | float) else {}
    if "min" in extra:
        rules["ge"] = extra["min"]
    if "max" in extra:
        rules["le"] = extra["max"]
    if "choices" in extra:
        rules["pattern"] = "^(?:" + "|".join(re.escape(choice) for choice in extra["choices"]) + r")\Z"
    if extra.get("colour"):
        rules["pattern"] = r"^#[0-9a-fA-F]{6}\Z"
    return field(default=default, metadata={**_help(help, **extra), **rules})


def section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata=_help(help))


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"expected a valid regular expression ({exc})") from None
    return value


def _folder(value: Any) -> Path:
    if isinstance(value, Path) or (isinstance(value, str) and value.strip()):
        return Path(value).expanduser()
    raise ValueError("expected a folder path")


#: A regular expression, checked to compile.
Regex = Annotated[str, AfterValidator(_regex)]
#: A folder; ``~`` is the user's home.
Folder = Annotated[Path, BeforeValidator(_folder)]


@dataclass(frozen=True)
class EtsySettings:
    base_url: str = setting("https://api.etsy.com", "Etsy API root; the sandbox prints its own address")
    connect_url: str = setting(
        "", "OAuth consent page; empty = https://www.etsy.com/oauth/connect, or {base_url}/oauth/connect"
    )
    keystring: str = setting("", "your app's keystring (secret: prefer KAALWATCH_ETSY_KEYSTRING)")
    shared_secret: str = setting("", "your app's shared secret (secret: prefer KAALWATCH_ETSY_SHARED_SECRET)")
    scopes: tuple[str, ...] = setting(
        ("transactions_r", "shops_r", "listings_r"), "OAuth scopes to ask for (add transactions_w for shipping)"
    )
    redirect_port: int = setting(3003, "loopback port of the OAuth callback; 0 = any free port", min=0, max=65535)
    redirect_uri: str = setting("", "redirect URI registered on your Etsy app; empty = http://localhost:PORT/callback")
    rate_per_second: float = setting(8.0, "client-side request budget per second (Etsy allows 10)", min=0.1)
    rate_per_day: int = setting(10_000, "requests per rolling 24 h that the client will not exceed", min=1)
    timeout_seconds: float = setting(20.0, "timeout of one HTTP request", min=0.1)
    max_retries: int = setting(5, "retries of a failing request before giving up", min=0, max=20)


@dataclass(frozen=True)
class SyncSettings:
    interval_minutes: float = setting(10.0, "how often the daemon syncs orders from Etsy", min=0.05)
    margin_minutes: float = setting(15.0, "overlap subtracted from the last sync time, for late updates", min=0)
    recheck_open_hours: float = setting(24.0, "re-read open orders this often (Etsy misses some updates)", min=0.1)
    first_import_days: int = setting(60, "how far back the first sync looks when no --since is given", min=1)
    download_max_mb: float = setting(40.0, "largest buyer upload or listing image downloaded", min=0.1)
    download_timeout_seconds: float = setting(30.0, "the longest one download may take, start to finish", min=0.1)
    download_order_max_mb: float = setting(150.0, "most bytes downloaded for one order", min=0.1)
    download_max_files: int = setting(20, "most files downloaded for one order (more links are listed only)",
                                      min=1, max=1000)
    download_workers: int = setting(3, "downloads running at once", min=1, max=16)
    download_interval_seconds: float = setting(20.0, "how often the daemon works through the download queue",
                                               min=0.1)
    download_hosts: tuple[str, ...] = setting(
        (), "hosts whose links typed into free-text answers are downloaded too (upload fields always are)")


@dataclass(frozen=True)
class WatcherSettings:
    backend: str = setting("auto", "auto, native or polling", choices=("auto", "native", "polling"))
    poll_interval_seconds: float = setting(5.0, "scan interval of the polling backend", min=0.1)
    quiet_seconds: float = setting(2.0, "a file must be unchanged this long before it becomes a version", min=0)
    closed_quiet_seconds: float = setting(
        10.0, "the same for formats kaalwatch cannot decode (.clip, .af, .sai …): no decode can catch a torn save",
        min=0)
    rescan_minutes: float = setting(5.0, "full rescan of every order folder (events are only hints)", min=0.05)
    workers: int = setting(0, "preview worker processes; 0 = one per core", min=0, max=64)
    ignore_patterns: tuple[Regex, ...] = setting((), "extra regular expressions of file names to ignore")


@dataclass(frozen=True)
class PreviewSettings:
    long_edge: int = setting(1600, "long edge of the watermarked preview, in pixels", min=64, max=10_000)
    thumb_edge: int = setting(400, "long edge of the thumbnail, in pixels", min=32, max=2000)
    background: str = setting("#ffffff", "colour transparent artwork is flattened onto", colour=True)
    jpeg_quality: int = setting(85, "JPEG quality of previews and thumbnails", min=30, max=100)
    max_megapixels: float = setting(180.0, "larger images are refused as decompression bombs", min=1)


@dataclass(frozen=True)
class WatermarkSettings:
    template: str = setting(
        "PROOF — not for print · {shop} · #{receipt_id}",
        "watermark text; {shop} {receipt_id} {buyer_first_name} {version} are filled in",
    )
    opacity: float = setting(0.22, "opacity of the watermark text, 0..1", min=0.01, max=1)
    angle: float = setting(30.0, "angle of the tiled text, degrees", min=-90, max=90)
    size: float = setting(0.045, "text height as a fraction of the preview's long edge", min=0.005, max=0.5)
    color: str = setting("#ffffff", "text colour", colour=True)
    font: str = setting("", "TrueType font file; empty = DejaVu Sans shipped with kaalwatch")


@dataclass(frozen=True)
class ReviewSettings:
    host: str = setting("127.0.0.1", "address of the review page; anything but loopback requires a password")
    port: int = setting(8470, "port of the review page", min=0, max=65535)
    require_password: bool = setting(True, "ask for the password set by `kaalwatch set-password`")
    allowed_hosts: tuple[str, ...] = setting((), "extra Host header names accepted (DNS-rebinding guard)")
    session_hours: float = setting(12.0, "how long a login lasts at most", min=0.1)
    idle_minutes: float = setting(60.0, "a login unused this long ends (logout and set-password end it at once)",
                                  min=1)
    login_attempts: int = setting(5, "wrong passwords (from any address) before login is locked", min=1, max=100)
    login_lock_seconds: float = setting(30.0, "first login lock; it doubles with each further wrong password",
                                        min=1)
    login_lock_max_seconds: float = setting(300.0, "longest login lock (`kaalwatch set-password` lifts it)", min=1)


@dataclass(frozen=True)
class DeliverySettings:
    max_files: int = setting(5, "Etsy's limit of files per order", min=1, max=5)
    max_file_mb: float = setting(20.0, "Etsy's limit per file, in MB", min=0.1, max=20)
    max_name_length: int = setting(70, "Etsy's limit of a file name's length", min=8, max=70)
    colour: str = setting(
        "srgb", "srgb converts deliverables to sRGB, keep leaves the profile", choices=("srgb", "keep")
    )
    create_shipment: bool = setting(
        False, "after confirmed delivery, mark the receipt shipped on Etsy (needs transactions_w)"
    )
    shipment_note: str = setting("Your artwork has been delivered — thank you!", "note to the buyer with that shipment")
    max_crop_share: float = setting(
        0.2, "a crop cutting more than this share of the artwork is a warning (4:5 from a square cuts 0.2)",
        min=0, max=0.9,
    )


@dataclass(frozen=True)
class RetentionSettings:
    files_days: int = setting(60, "days after an order finished (on Etsy or here) to delete references and unused "
                              "versions", min=0)
    anonymise_days: int = setting(365, "days after an order finished (on Etsy or here) to anonymise it", min=0)
    abandoned_days: int = setting(540, "days after the last activity to purge and anonymise an order that never "
                                  "finished (abandoned, on hold); the owner is warned a week before", min=0)
    run_hour: int = setting(3, "hour of the day (local) the daily retention job runs", min=0, max=23)


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[str, ...] = setting(
        (), "apprise URLs to notify, e.g. ntfy://topic, mailto://user:pass@host, tgram://token/chat; "
            "none = nothing leaves this machine")
    new_order: bool = setting(True, "tell about a new order")
    photos: bool = setting(True, "tell when the buyer's photos arrived")
    cancelled: bool = setting(True, "tell when Etsy cancelled or refunded an order (stop work)")
    delivered: bool = setting(True, "tell when Etsy confirmed a delivery")
    ship_by: bool = setting(True, "tell the day before ship-by when a job has no approved version")
    sync_problem: bool = setting(True, "tell when sync has failed for an hour or needs `kaalwatch auth`")
    timeout_seconds: float = setting(10.0, "give up on a notification service after this long", min=1, max=120)


@dataclass(frozen=True)
class Deliverable:
    format: str = setting("png", "png, jpeg, tiff or pdf", choices=("png", "jpeg", "tiff", "pdf"))
    long_edge: int = setting(0, "resize to this long edge in pixels; 0 = full resolution", min=0, max=40_000)
    aspect: str = setting("", "crop to this aspect ratio, e.g. 4:5; empty = as drawn", pattern=r"^$|^\d+:\d+$")
    dpi: int = setting(300, "DPI written into the file (and the PDF page size)", min=36, max=2400)
    quality: int = setting(95, "JPEG quality", min=50, max=100)
    suffix: str = setting("", "the file's variant, e.g. 'print 8x10': {variant} in the name")
    print_inches: str = setting(
        "", "print size in inches, e.g. 8x10: sets the aspect, the PDF page and the pixels the DPI needs",
        pattern=r"^$|^\d+(\.\d+)?x\d+(\.\d+)?$", example="8x10",
    )
    square: str = setting("portrait", "orientation of the aspect on a square artwork",
                          choices=("portrait", "landscape"))
    fit: str = setting("crop", "crop to the aspect, or margins: pad the whole artwork to it",
                       choices=("crop", "margins"))
    margin_colour: str = setting("#ffffff", "colour of the margins when fit is margins", colour=True)
    name: str = setting("", "file name template; empty = the workflow's name_template")


def _default_deliverables() -> tuple[Deliverable, ...]:
    # 2048 px at quality 85: a web size that shows sharp on a phone or a laptop and stays well under a megabyte
    # or two; the PNG is the full-resolution file.
    return (Deliverable(format="png"), Deliverable(format="jpeg", suffix="web", long_edge=2048, quality=85))


NAME_FIELDS = "{receipt_id} {buyer_first} {answer:QUESTION} {listing_short} {listing} {item} {variant}"


@dataclass(frozen=True)
class Workflow:
    name: str = setting("default", "shown on the review page and in order.yaml")
    listing_ids: tuple[int, ...] = setting((), "Etsy listing ids that use this workflow")
    skus: tuple[str, ...] = setting((), "SKUs that use this workflow")
    title_pattern: Regex = setting("", "regular expression matched against the listing title")
    watermark: str = setting("", "watermark template for this workflow; empty = watermark.template")
    preview_long_edge: int = setting(0, "preview size for this workflow; 0 = preview.long_edge", min=0, max=10_000)
    deliverables: tuple[Deliverable, ...] = field(
        default_factory=_default_deliverables, metadata=_help("the files promised to the buyer")
    )
    revisions_included: int = setting(2, "rounds of changes included in the price", min=0, max=100)
    due_slack_days: int = setting(2, "a job counts as due this many days before its ship-by date", min=0, max=60)
    needs_references: bool = setting(False, "wait for buyer photos before the job counts as new")
    kind: str = setting(
        "artwork", "artwork makes a job; addon (e.g. Rush) makes none and changes the order",
        choices=("artwork", "addon"),
    )
    rush_days: int = setting(0, "addon: the order's due date moves this many days sooner", min=0, max=60)
    urgent: bool = setting(False, "addon: the order is marked urgent")
    name_template: str = setting(
        "{receipt_id} {listing_short} {item} {variant}", f"file names of the deliverables; fields: {NAME_FIELDS}"
    )
    item_noun: str = setting("portrait", "what one unit is called on the page ('2 portraits ordered')")
    quantity: str = setting(
        "ask", "quantity > 1: ask = warn before delivering one artwork; same = the same files cover every unit",
        choices=("ask", "same"),
    )


def _example_workflows() -> tuple[Workflow, ...]:
    return (
        # First: an add-on's title ("Rush order for your pet portrait") may name the artwork too.
        Workflow(name="rush", kind="addon", title_pattern=r"(?i)\brush\b", rush_days=2, urgent=True),
        Workflow(
            name="pet portrait",
            title_pattern=r"(?i)\bpet\b|\bdog\b|\bcat\b",
            needs_references=True,
            revisions_included=2,
            deliverables=(
                Deliverable(format="png"),
                Deliverable(format="jpeg", suffix="web", long_edge=2048, quality=85),
                Deliverable(format="pdf", suffix="print 8x10", print_inches="8x10", dpi=300),
            ),
        ),
        Workflow(
            name="family portrait",
            title_pattern=r"(?i)family",
            needs_references=True,
            revisions_included=3,
            due_slack_days=3,
        ),
    )


@dataclass(frozen=True)
class Settings:
    # Read by pydantic, for this class and every section in it: an unknown key is an error (did you mean…),
    # a number where text belongs is its digits (SKUs), patterns match as Python's ``re`` does.
    __pydantic_config__ = ConfigDict(extra="forbid", coerce_numbers_to_str=True, regex_engine="python-re")

    workspace: Folder = setting(Path("~/KaalOrders"), "folder holding orders/ and the tool's own .kaalwatch/")
    shop_name: str = setting("Kaal Digital", "your shop's name, used in watermarks and messages")
    folder_template: str = setting(
        "{receipt_id} {buyer} - {listing}", "order folder names; {receipt_id} {buyer} {listing} {date}"
    )
    log_level: str = setting("info", "debug, info, warning or error", choices=("debug", "info", "warning", "error"))
    private_files: bool = setting(
        True, "buyer-data files 0600 and folders 0700 whatever the umask; false follows the umask (an orders "
        "folder shared with another account)"
    )
    etsy: EtsySettings = section(EtsySettings, "connection to Etsy's Open API v3")
    sync: SyncSettings = section(SyncSettings, "importing orders")
    watcher: WatcherSettings = section(WatcherSettings, "turning saves into versions")
    preview: PreviewSettings = section(PreviewSettings, "previews and thumbnails")
    watermark: WatermarkSettings = section(WatermarkSettings, "the watermark burned into previews")
    review: ReviewSettings = section(ReviewSettings, "the review page")
    delivery: DeliverySettings = section(DeliverySettings, "files for Etsy's order page")
    retention: RetentionSettings = section(RetentionSettings, "keeping buyers' data only as long as needed")
    notify: NotifySettings = section(NotifySettings, "notifications through apprise (off until urls are set)")
    workflows: tuple[Workflow, ...] = field(
        default_factory=_example_workflows,
        metadata=_help("listing → workflow rules, first match wins (by listing id, SKU or title)"),
    )
    default_workflow: Workflow = section(Workflow, "the workflow of listings no rule matches")

    @property
    def tool_dir(self) -> Path:
        """The tool-owned area: version copies, previews, index, logs, locks and secrets."""
        return self.workspace / ".kaalwatch"

    @property
    def orders_dir(self) -> Path:
        return self.workspace / "orders"


# --------------------------------------------------------------------------------------------------
# Loading


def load_settings(
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    use_default_path: bool = True,
) -> Settings:
    """Load and validate settings once (see module docstring for the order of precedence)."""
    env = os.environ if env is None else env
    plain = _as_plain(Settings())
    path = sources.config_file(config_path, env, use_default_path=use_default_path)
    if path is not None:
        plain = sources.layer(Settings, plain, sources.read_yaml(path, str(path)), str(path))

    # Environment variables are applied before the secrets file is located, because the workspace
    # itself may come from KAALWATCH_WORKSPACE.
    env_data = sources.env_layer(Settings, env)
    settings: Settings = sources.validated(Settings, sources.merge(plain, env_data), "environment")

    secret_file = app_keys_path(settings.workspace)
    if secret_file.exists():
        label = str(secret_file)
        mode = stat.S_IMODE(secret_file.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"{label}: readable by others (mode {mode:o})", hint=f"chmod 600 {label}")
        data = sources.read_yaml(secret_file, label)
        if not isinstance(data, Mapping) or set(data) - {"keystring", "shared_secret"}:
            raise ConfigError(f"{label}: expected only keystring and shared_secret")
        plain = sources.layer(Settings, plain, {"etsy": dict(data)}, label)
        settings = sources.validated(Settings, sources.merge(plain, env_data), "environment")
    return settings


# --------------------------------------------------------------------------------------------------
# The documented default file


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000).strip()
    return dumped.removesuffix("\n...").removesuffix("...").strip()


def _as_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_as_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _render(obj: Any, indent: str, lines: list[str]) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        comment = f.metadata.get("help", "")
        if dataclasses.is_dataclass(value):
            lines.append(f"{indent}# {comment}")
            lines.append(f"{indent}{f.name}:")
            _render(value, indent + "  ", lines)
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            lines.append(f"{indent}# {comment}")
            block = yaml.safe_dump({f.name: _as_plain(value)}, sort_keys=False, allow_unicode=True, width=1000)
            lines.extend(indent + line for line in block.rstrip("\n").split("\n"))
        else:
            lines.append(f"{indent}{f.name}: {_yaml_scalar(_as_plain(value))}  # {comment}")


def render_default_config() -> str:
    """The text of the documented default ``config.yaml``: every setting, its default, one comment."""
    lines = [
        "# kaalwatch configuration. Every setting is listed with its default; delete what you do not change.",
        "# Environment variables override this file: KAALWATCH_<SECTION>_<KEY>, e.g. KAALWATCH_ETSY_BASE_URL.",
        "# Keep secrets (Etsy keystring and shared secret) in the environment or in",
        "# <workspace>/.kaalwatch/secrets/app.yaml (mode 0600, written by `kaalwatch auth`), not here.",
        "",
    ]
    _render(Settings(), "", lines)
    return "\n".join(lines) + "\n"


def as_dict(settings: Settings, *, redact: bool = True) -> dict[str, Any]:
    """Plain data for `kaalwatch doctor`/`--debug`; secrets are replaced by '***' when set."""
    data = _as_plain(settings)
    if redact:
        for key in SECRET_KEYS:
            section_name, name = key.split(".")
            if data[section_name][name]:
                data[section_name][name] = "***"
    return data

