"""Benchmark case "review": server time of the Today view, the jobs list and search with 10,000 orders, and
of a 50-version job page.

The workspace is built the fast way that still ends in the real thing: each order's manifest is written
with the store's own serialiser into its own folder, then ``Workspace.refresh_index()`` indexes them all
once, exactly as it does for folders a person copied in. 10,000 orders, 2,000 of them with an active job
spread over every active state, the rest delivered or cancelled; one order has 50 versions and a long
history. Today (every active job under its next step), the list (first page of active jobs), two
searches (a surname; an unaccented first name that must also match accented buyers and pet names in
the answers, across all states) and the job page are requested through
Flask's test client, so the time is the server's alone: routing, guards, the index queries, the
manifest, the template. The job page is timed as usual (manifest unchanged, so the cached parse is
reused) and with the manifest parsed on every request (as after each change). ``quick=True`` builds 300
orders and times a few requests: its numbers mean nothing, it keeps the harness from rotting.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from bench.harness import row, stats, timed  # noqa: E402
from kaalwatch.manifest import dump_manifest  # noqa: E402
from kaalwatch.model import (  # noqa: E402
    ACTIVE_STATES,
    Answer,
    Event,
    Job,
    JobState,
    Order,
    Proof,
    Version,
)
from kaalwatch.settings import Settings, load_settings  # noqa: E402
from kaalwatch.store import MANIFEST, REFERENCES, Workspace  # noqa: E402

LIST_TARGET_MS = 150.0
JOB_TARGET_MS = 100.0
FIRST = ["Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Donald", "Margaret", "Linus", "Zoë"]
LAST = ["Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Torvalds", "Perlman"]
TITLES = ["Custom pet portrait", "Family portrait", "Couple illustration", "House portrait", "Wedding sketch"]


def _order(rng: random.Random, receipt_id: int, now: datetime, *, active: bool) -> Order:
    ordered = now - timedelta(days=rng.randint(1, 400 if not active else 20))
    live = sorted(s.value for s in ACTIVE_STATES)
    state = JobState(rng.choice(live)) if active else rng.choice([JobState.DELIVERED, JobState.CANCELLED])
    title = rng.choice(TITLES)
    job = Job(job_id=str(receipt_id * 10), listing_id=1000 + TITLES.index(title), title=title, workflow="default",
              state=state, answers=[Answer(question="Name(s) to include", answer=rng.choice(FIRST)),
                                    Answer(question="Background colour", answer="sage green")])
    return Order(receipt_id=receipt_id, etsy_status="paid" if active else "completed",
                 buyer_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}", ordered_at=ordered,
                 ship_by=ordered + timedelta(days=rng.randint(5, 30)), jobs=[job],
                 history=[Event(at=ordered, actor="sync", event="order_created", details={"jobs": [job.job_id]})])


def _big_order(receipt_id: int, now: datetime, versions: int) -> Order:
    """One job with ``versions`` saves, a proof every fifth, and the history those leave."""
    job = Job(job_id=str(receipt_id * 10), listing_id=1001, title="Family portrait", workflow="default",
              state=JobState.PROOF_SENT, answers=[Answer(question="Names", answer="Ada, Grace and Biscuit")])
    history = [Event(at=now - timedelta(days=10), actor="sync", event="order_created")]
    for n in range(1, versions + 1):
        at = now - timedelta(hours=versions - n)
        digest = f"{n:064x}"
        job.versions.append(Version(
            number=n, source_name=f"family v{n}.psd", sha256=digest, size=40_000_000 + n, saved_at=at,
            copy=f"versions/{receipt_id}/{job.job_id}/v{n:03d}-{digest[:12]}.psd",
            preview=f"previews/{receipt_id}/{job.job_id}/v{n:03d}-{digest[:12]}.jpg",
            thumb=f"previews/{receipt_id}/{job.job_id}/v{n:03d}-{digest[:12]}-thumb.jpg",
            preview_key=digest[:12], width=6000, height=4800, kind="psd"))
        history.append(Event(at=at, actor="watcher", event="version_added", job_id=job.job_id,
                             details={"version": n, "sha256": digest, "size": 40_000_000 + n}))
        history.append(Event(at=at, actor="watcher", event="preview_ready", job_id=job.job_id, details={"version": n}))
        if n % 5 == 0:
            job.proofs.append(Proof(version=n, sent_at=at, answer="changes_requested" if n < versions else None))
            history.append(Event(at=at, actor="review", event="proof_sent", job_id=job.job_id, details={"version": n}))
    return Order(receipt_id=receipt_id, etsy_status="paid", buyer_name="Ada Lovelace",
                 ordered_at=now - timedelta(days=10), ship_by=now + timedelta(days=4), jobs=[job], history=history)


def build(ws: Workspace, orders: int, active: int, versions: int, seed: int = 7) -> int:
    """Write ``orders`` manifests (``active`` of them active) and index them; returns the big order's id."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    active_ids = set(rng.sample(range(orders), active))
    big_id = 9_000_000
    for n in range(orders):
        receipt_id = 1_000_000 + n
        order = _order(rng, receipt_id, now, active=n in active_ids)
        _write(ws, order)
    _write(ws, _big_order(big_id, now, versions))
    ws.refresh_index()
    return big_id


def _write(ws: Workspace, order: Order) -> None:
    folder = ws.orders_dir / f"{order.receipt_id} {order.buyer_name} - {order.jobs[0].title}"
    (folder / REFERENCES).mkdir(parents=True)
    (folder / MANIFEST).write_text(dump_manifest(order), encoding="utf-8")


def _settings(workspace: Path) -> Settings:
    base = load_settings(env={}, use_default_path=False)
    return dataclasses.replace(base, workspace=workspace,
                               review=dataclasses.replace(base.review, require_password=False))


def run(quick: bool = False) -> list[dict[str, Any]]:
    from review_app import create_app

    orders, active, versions, runs = (300, 60, 50, 5) if quick else (10_000, 2_000, 50, 50)
    with tempfile.TemporaryDirectory(prefix="kw-bench-review-") as tmp:
        settings = _settings(Path(tmp) / "ws")
        ws = Workspace(settings)
        ws.create()
        big = build(ws, orders, active, versions)
        app = create_app(settings, ws)
        client = app.test_client()
        job_path = f"/jobs/{big}/{big * 10}"
        cases = [
            ("today view (every active job by next step)", "/", LIST_TARGET_MS),
            ("jobs list (active, first page)", "/jobs", LIST_TARGET_MS),
            ("jobs list (search 'hopper')", "/jobs?q=hopper", LIST_TARGET_MS),
            ("search 'zoe' (all states, accents, answers)", "/jobs?q=zoe", LIST_TARGET_MS),
            (f"job page ({versions} versions)", job_path, JOB_TARGET_MS),
            (f"job page ({versions} versions, manifest parsed)", job_path, JOB_TARGET_MS),
        ]
        cache = app.extensions["kaalwatch"].orders
        rows = []
        for name, path, target in cases:
            sizes: list[int] = []

            cold = "parsed" in name

            def fetch(path: str = path, sizes: list[int] = sizes, cold: bool = cold) -> None:
                if cold:  # as after every change of the order: no cached manifest
                    cache.clear()
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status_code}")
                sizes.append(len(response.data))

            samples = [s * 1000 for s in timed(fetch, runs=runs, warmup=3)]
            summary = stats(samples)
            rows.append(row("review", name, "median server time", round(summary["median"], 2), "ms", target=target,
                            minimum=round(summary["min"], 2), maximum=round(summary["max"], 2),
                            p95_ms=round(summary["p95"], 2), html_bytes=sizes[-1], orders=orders + 1,
                            active_jobs=active + 1, runs=runs))
        ws.close()
        return rows


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
