"""The contract suite runs, with zero skips, in a fresh clone that has nothing beside it.

A clone holds exactly the files git tracks; this copies those (so it also catches a document that was
never added) into an empty folder — no ``../shared`` next to it — and runs every ``contract`` test there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.openapi import DOC_PATH, REPO, load_doc, require_doc


def test_the_openapi_document_is_etsys_and_tracked_by_git() -> None:
    doc = require_doc()
    assert DOC_PATH.is_relative_to(REPO)
    assert doc["info"]["title"] == "Etsy Open API v3" and doc["info"]["version"] == "3.0.0"
    operations = [op for item in doc["paths"].values() for op in item.values()
                  if isinstance(op, dict) and "operationId" in op]
    assert len(operations) == 105
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(DOC_PATH.relative_to(REPO))], cwd=REPO,
                             capture_output=True, text=True, check=False)
    assert tracked.returncode == 0, f"{DOC_PATH} is not tracked by git, so a clone would not have it"


def _clone(target: Path) -> None:
    """What ``git clone`` of the current index would hold (tracked files only, as in the working tree)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not there either
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.slow
def test_contract_suite_runs_with_zero_skips_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "stranger" / "kaalwatch"
    _clone(clone)
    assert not (clone.parent / "shared").exists()
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "contract", "-p", "no:randomly", "-p", "no:cacheprovider", "-q",
         "--junitxml", str(report)],
        cwd=clone, capture_output=True, text=True, timeout=900, check=False)
    tail = "\n".join(done.stdout.splitlines()[-15:])
    assert done.returncode == 0, tail + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert not re.search(r"skipped|xfailed|failed|error", summary), summary
    # Every contract test of the suite ran: the ones in test_contract.py and the sync's request check.
    xml = report.read_text()
    assert xml.count("<skipped") == 0 and passed == xml.count("<testcase ")
    assert "test_every_request_matches_the_openapi_document" in xml and "test_contract" in xml
    assert passed >= 25, summary
    assert json.loads((clone / DOC_PATH.relative_to(REPO)).read_text())["info"] == load_doc()["info"]
