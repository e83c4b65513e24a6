"""Which workflow a listing follows: the first rule in ``settings.workflows`` that matches, else the default."""

from __future__ import annotations

import re
from collections.abc import Sequence

from kaalwatch.settings import Workflow


def workflow_for(
    workflows: Sequence[Workflow], default: Workflow, *, listing_id: int | None, sku: str | None, title: str
) -> Workflow:
    """Match by listing id first, then SKU, then title pattern, in the order the rules are written."""
    for rule in workflows:
        if listing_id is not None and listing_id in rule.listing_ids:
            return rule
        if sku and sku in rule.skus:
            return rule
        if rule.title_pattern and re.search(rule.title_pattern, title or ""):
            return rule
    return default


def by_name(workflows: Sequence[Workflow], default: Workflow, name: str) -> Workflow:
    """The workflow a manifest names; the default when the rule was renamed or removed since."""
    return next((rule for rule in workflows if rule.name == name), default)
