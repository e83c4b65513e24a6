"""Numbered manifest migrations on stored schema-1 and schema-2 manifests, and the backup kept before the first
rewrite."""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from kaalwatch import lifecycle, migrations, retention
from kaalwatch.errors import ManifestError
from kaalwatch.manifest import parse_manifest
from kaalwatch.model import JobState, Shipment
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, Workspace, manifest_backups
from kaalwatch.watch.ignore import IgnoreRules
from kaalwatch.watch.locate import Role, role_in_order

# Written by kaalwatch at schema 1 (delivery's shipment among the unknown keys, the legacy sticky
# warnings), with a key its owner added by hand.
SCHEMA_1 = Path(__file__).resolve().parents[1] / "data" / "manifests" / "schema-1" / MANIFEST
# Written by kaalwatch at schema 2: one job with a resolved sync conflict and an open one, their facts in history.
SCHEMA_2 = SCHEMA_1.parents[1] / "schema-2" / MANIFEST
RECEIPT = 3301122334
BACKUP = f"{MANIFEST}.schema1.bak"
RESOLVED = "biscuit (Ada's conflicted copy 2026-05-06).png"
OPEN = "biscuit.sync-conflict-20260506-101500-ABCDEF7.png"


def stored(path: Path = SCHEMA_1) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def put(ws: Workspace, source: Path = SCHEMA_1) -> Path:
    folder = ws.orders_dir / f"{RECEIPT} Grace Hopper - Custom pet portrait"
    folder.mkdir(parents=True)
    shutil.copyfile(source, folder / MANIFEST)
    ws.refresh_index()
    return folder


def test_migrate_1_to_2_drops_legacy_warnings_and_keeps_the_shipment() -> None:
    data = stored()
    before = copy.deepcopy(data)
    out = migrations.migrate_1_to_2(data)
    assert data == before  # pure: the input is not changed
    assert out["schema"] == 2
    assert not {"last_error", "flags"} & set(out) and not {"last_error", "flags"} & set(out["jobs"][0])
    assert out["shipment"] == {"status": "created", "attempts": 1, "at": "2026-05-07T10:00:00+00:00"}
    assert out["my_own_note"] == before["my_own_note"]
    assert {k: v for k, v in out.items() if k not in ("schema", "last_error", "flags", "jobs")} == {
        k: v for k, v in before.items() if k not in ("schema", "last_error", "flags", "jobs")}


def test_migrate_2_to_3_types_conflicts_from_history() -> None:
    data = stored(SCHEMA_2)
    before = copy.deepcopy(data)
    out = migrations.migrate_2_to_3(data)
    assert data == before  # pure: the input is not changed
    assert out["schema"] == 3
    job = out["jobs"][0]
    assert job["conflicts"] == [{"file": OPEN, "version": 2, "original": "biscuit.png", "sha256": "c" * 64}]
    assert job["settled_conflicts"] == [{"file": RESOLVED, "version": 1, "original": "biscuit.png",
                                         "sha256": "a" * 64}]
    assert out["history"] == before["history"]  # the events stay as they were
    assert {k: v for k, v in job.items() if k not in ("conflicts", "settled_conflicts")} == {
        k: v for k, v in before["jobs"][0].items() if k != "conflicts"}


def test_stored_schema_2_conflicts_decide_without_history() -> None:
    order = parse_manifest(SCHEMA_2.read_text(encoding="utf-8"), str(SCHEMA_2))
    assert order.schema == 2
    job = order.jobs[0]
    assert [(c.file, c.version) for c in job.conflicts] == [(OPEN, 2)]
    order.history.clear()  # the decisions below read typed fields only
    assert not lifecycle.note_conflict(order, job.job_id, RESOLVED, version=1, sha256="a" * 64)
    assert lifecycle.note_conflict(order, job.job_id, RESOLVED, version=2, sha256="c" * 64)  # other bytes
    assert OPEN in (lifecycle.conflict_refusal(order, job) or "")
    lifecycle.resolve_conflict(order, job.job_id, OPEN, 2)
    assert order.history[-1].details["sha256"] == "c" * 64
    assert [c.file for c in job.conflicts] == [RESOLVED] and job.settled_conflicts[-1].file == OPEN


def test_migrate_runs_every_step_and_says_where_it_started() -> None:
    migrated, version = migrations.migrate(stored())
    assert (version, migrated["schema"]) == (1, migrations.SCHEMA_VERSION)
    again, version = migrations.migrate(migrated)
    assert (again, version) == (migrated, migrations.SCHEMA_VERSION)
    assert sorted(migrations.STEPS) == list(range(1, migrations.SCHEMA_VERSION))


def test_stored_schema_1_manifest_reads_as_a_typed_order() -> None:
    order = parse_manifest(SCHEMA_1.read_text(encoding="utf-8"), str(SCHEMA_1))
    assert order.schema == 1  # the file's schema, until it is written back
    assert order.shipment == Shipment(status="created", attempts=1, at=datetime(2026, 5, 7, 10, tzinfo=UTC))
    assert order.errors == {} and order.jobs[0].errors == {}
    assert order.extra == {"my_own_note": "the buyer prefers warm colours"}
    assert order.jobs[0].state is JobState.DELIVERED


def test_first_write_keeps_the_original_bytes_once(ws: Workspace) -> None:
    folder = put(ws)
    original = SCHEMA_1.read_bytes()
    ws.load(RECEIPT)
    with ws.edit(RECEIPT):
        pass  # nothing changed: nothing written, no backup
    assert (folder / MANIFEST).read_bytes() == original and manifest_backups(folder) == []

    with ws.edit(RECEIPT) as order:
        lifecycle.add_note(order, "first change after the upgrade")
    assert manifest_backups(folder) == [folder / BACKUP]
    assert (folder / BACKUP).read_bytes() == original
    assert (folder / BACKUP).stat().st_mode & 0o777 == 0o600
    rewritten = yaml.safe_load((folder / MANIFEST).read_text(encoding="utf-8"))
    assert rewritten["schema"] == migrations.SCHEMA_VERSION and rewritten["shipment"]["status"] == "created"
    assert rewritten["jobs"][0]["conflicts"] == [] and rewritten["jobs"][0]["settled_conflicts"] == []
    assert rewritten["my_own_note"] == "the buyer prefers warm colours" and "last_error" not in rewritten

    with ws.edit(RECEIPT) as order:
        lifecycle.add_note(order, "second change")
    assert (folder / BACKUP).read_bytes() == original and manifest_backups(folder) == [folder / BACKUP]


def test_schema_2_backup_is_named_for_its_schema(ws: Workspace) -> None:
    folder = put(ws, SCHEMA_2)
    original = SCHEMA_2.read_bytes()
    with ws.edit(RECEIPT) as order:
        lifecycle.add_note(order, "first change after the upgrade")
    backup = folder / f"{MANIFEST}.schema2.bak"
    assert manifest_backups(folder) == [backup] and backup.read_bytes() == original
    rewritten = yaml.safe_load((folder / MANIFEST).read_text(encoding="utf-8"))
    assert rewritten["schema"] == 3 and rewritten["jobs"][0]["conflicts"][0]["file"] == OPEN


def test_newer_schema_is_refused_and_left_untouched(ws: Workspace, tmp_path: Path) -> None:
    newer = tmp_path / MANIFEST
    newer.write_text(SCHEMA_1.read_text(encoding="utf-8").replace("schema: 1", "schema: 99", 1), encoding="utf-8")
    folder = put(ws, newer)
    text = (folder / MANIFEST).read_bytes()
    with pytest.raises(ManifestError, match=r"newer kaalwatch \(schema 99, this one knows 3\)"):
        ws.read_folder(folder)
    assert (folder / MANIFEST).read_bytes() == text and manifest_backups(folder) == []


def test_the_watcher_ignores_the_backup() -> None:
    order = parse_manifest(SCHEMA_1.read_text(encoding="utf-8"), "order.yaml")
    rules = IgnoreRules()
    assert rules.ignores(BACKUP)
    assert role_in_order((BACKUP,), order, rules)[0] is Role.IGNORED


@pytest.mark.parametrize("edited_before", [True, False])
def test_retention_leaves_no_backup_of_buyer_data(ws: Workspace, settings: Settings, edited_before: bool) -> None:
    folder = put(ws)
    if edited_before:
        with ws.edit(RECEIPT) as order:
            lifecycle.add_note(order, "a change after the upgrade")
        assert manifest_backups(folder)
    finished = datetime(2026, 5, 7, 9, 30, tzinfo=UTC)
    report = retention.purge(ws, settings, now=finished + timedelta(days=settings.retention.anonymise_days + 1))
    assert not report.errors
    folder = ws.folder_of(RECEIPT)
    assert manifest_backups(folder) == []
    for path in ws.root.rglob("*"):
        if path.is_file() and "index.sqlite" not in path.name:
            assert b"Grace Hopper" not in path.read_bytes(), path
