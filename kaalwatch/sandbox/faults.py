"""Injected faults: an error status, added latency or a dropped connection on the next N or a share of calls."""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass
from http import HTTPStatus


@dataclass
class Fault:
    """One rule. ``count=None`` means unlimited; ``share`` applies it to that fraction of matching calls;
    ``paths`` are glob patterns on the request path (``None``: every Etsy path, never the admin API)."""

    status: int | None = None
    latency: float = 0.0
    count: int | None = None
    share: float | None = None
    drop: bool = False
    paths: tuple[str, ...] | None = None

    def message(self) -> str:
        """The JSON error text sent with the injected status, worded as Etsy's edge words it."""
        if self.status == 429:
            return "Exceeded per second rate limit"
        try:
            return HTTPStatus(self.status or 500).phrase
        except ValueError:
            return "Injected fault"

    def matches(self, path: str) -> bool:
        """Whether this rule is about ``path``."""
        return self.paths is None or any(fnmatch.fnmatchcase(path, p) for p in self.paths)


class FaultInjector:
    """The active rules; :meth:`take` decides, for one request, which rule (if any) fires."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        # Seeded so a "30 % of calls" run is reproducible.
        self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not crypto

    def add(self, fault: Fault) -> None:
        """Activate a rule (rules are tried in the order they were added)."""
        if fault.status is None and not fault.drop and fault.latency <= 0:
            raise ValueError("a fault needs a status, a latency or drop=True")
        if fault.share is not None and not 0 < fault.share <= 1:
            raise ValueError("share must be in (0, 1]")
        with self._lock:
            self._rules.append(fault)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def take(self, path: str) -> Fault | None:
        """The rule that fires for this request, consuming one of its ``count``."""
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(path):
                    continue
                if rule.share is not None and self._rng.random() >= rule.share:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                return rule
            return None

    @property
    def active(self) -> list[Fault]:
        """A snapshot of the rules still active."""
        with self._lock:
            return list(self._rules)
