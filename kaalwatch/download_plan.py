"""Which reference files a new order's receipt asks for: buyer uploads and the listing's style sample.

Pure: the sync pass records the plan with :func:`kaalwatch.lifecycle.plan_downloads` (which keeps at most
``sync.download_max_files``) and :mod:`kaalwatch.download_queue` fetches the files later.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from kaalwatch.download import reference_file_name
from kaalwatch.etsy.parse import UPLOAD_KINDS, NewOrder
from kaalwatch.model import Reference
from kaalwatch.settings import SyncSettings

STYLE_SAMPLE = "style sample"


def _url_stem(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name.rsplit(".", 1)[0]


def _fetchable(url: str, kind: str | None, settings: SyncSettings) -> bool:
    """Links from Etsy's upload fields are fetched; a link typed into free text only from an allowed host."""
    if kind in UPLOAD_KINDS:
        return True
    host = (urlsplit(url).hostname or "").lower()
    return bool(host) and host in {h.lower() for h in settings.download_hosts}


def plan_references(new: NewOrder, settings: SyncSettings) -> list[Reference]:
    """References to fetch for a new order, ``pending`` until the download queue has them. Links not
    fetched stay in the answers, shown on the page."""
    refs: list[Reference] = []
    taken: dict[str | None, set[str]] = {}
    for job in new.order.jobs:
        names = taken.setdefault(job.job_id if len(new.order.jobs) > 1 else None, set())
        kinds = {answer.question: answer.kind for answer in job.answers}
        wanted = [(upload.url, upload.label, upload.label or _url_stem(upload.url) or "photo", "buyer")
                  for upload in new.uploads.get(job.job_id, [])
                  if _fetchable(upload.url, kinds.get(upload.question), settings)]
        sample = new.style_samples.get(job.job_id)
        if sample:
            wanted.append((sample, STYLE_SAMPLE, STYLE_SAMPLE, "listing"))
        for url, label, stem, source in wanted:
            name = reference_file_name(stem, "", names)
            names.add(name)
            refs.append(Reference(name=name, source=source, job_id=job.job_id, url=url, label=label,
                                  status="pending"))
    return refs
