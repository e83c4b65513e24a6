"""Files come out by id, resolved through the manifest, and only images from the workspace's allowed places."""

from __future__ import annotations

import os

import pytest
from flask.testing import FlaskClient

from kaalwatch import lifecycle
from kaalwatch.model import Order, Reference
from kaalwatch.store import Workspace
from tests.review.conftest import add_reference, jpeg


def url(order: Order, number: int = 1, kind: str = "preview") -> str:
    return f"/files/{order.receipt_id}/{order.jobs[0].job_id}/v/{number}/{kind}"


def test_preview_and_thumb_are_the_recorded_files(client: FlaskClient, ws: Workspace, order: Order) -> None:
    version = order.jobs[0].version(2)
    assert version is not None
    for kind, relative in (("preview", version.preview), ("thumb", version.thumb)):
        response = client.get(url(order, 2, kind))
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        assert response.data == ws.tool_path(relative).read_bytes()  # type: ignore[arg-type]


def test_unknown_ids_are_404(client: FlaskClient, order: Order) -> None:
    job = order.jobs[0].job_id
    for path in (url(order, 9), url(order, 1, "copy"), f"/files/{order.receipt_id}/nojob/v/1/preview",
                 f"/files/1/{job}/v/1/preview", f"/files/{order.receipt_id}/ref/0",
                 f"/files/{order.receipt_id}/ref/0/thumb", f"/files/{order.receipt_id}/ref/-1"):
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize("path", [
    "/files/{rid}/../../../etc/passwd", "/files/{rid}/{job}/v/1/../../../../secrets/review_password",
    "/files/{rid}/..%2F..%2Fsecrets/v/1/preview", "/files/{rid}/%2e%2e/v/1/preview", "/files/{rid}/../v/1/preview",
    "/files/%2Fetc%2Fpasswd/{job}/v/1/preview", "/files//etc/passwd", "/files/{rid}/{job}/v/1/%2Fetc%2Fpasswd",
    "/files/{rid}/ref/..%2F..%2Forder.yaml", "/jobs/{rid}/..%2F..%2F", "/jobs/%2Fetc%2Fpasswd",
    "/static/..%2F..%2Fkaalwatch%2Fsettings.py", "/static/../security.py", "/static//etc/passwd",
])
def test_traversal_and_absolute_paths_are_404(client: FlaskClient, order: Order, path: str) -> None:
    response = client.get(path.format(rid=order.receipt_id, job=order.jobs[0].job_id))
    assert response.status_code == 404, response.status_code
    assert b"argon2" not in response.data and b"root:" not in response.data


def test_hostile_manifest_paths_are_not_served(client: FlaskClient, ws: Workspace, order: Order) -> None:
    """Someone edits order.yaml by hand to point previews at secrets or outside the workspace."""
    job_id = order.jobs[0].job_id
    (ws.secrets_dir / "stolen.jpg").write_bytes(jpeg())  # even an image inside the private folders stays there
    (ws.root / "outside.jpg").write_bytes(jpeg())
    targets = ["../outside.jpg", "/etc/passwd", "secrets/review_password", "secrets/stolen.jpg",
               "state/../secrets/stolen.jpg", str(ws.root / "outside.jpg")]
    with ws.edit(order.receipt_id) as o:
        for number, target in enumerate(targets[:3], start=1):
            lifecycle.update_version(o, job_id, number, preview=target, thumb=targets[number + 2])
    for number in (1, 2, 3):
        for kind in ("preview", "thumb"):
            assert client.get(url(order, number, kind)).status_code == 404, (number, kind)


def test_version_copies_are_never_served(client: FlaskClient, ws: Workspace, order: Order) -> None:
    job_id = order.jobs[0].job_id
    with ws.edit(order.receipt_id) as o:
        version = o.job(job_id).version(1)
        assert version is not None
        lifecycle.update_version(o, job_id, 1, preview=version.copy)
    assert client.get(url(order, 1)).status_code == 404


def test_reference_full_size_and_thumb(client: FlaskClient, ws: Workspace, order: Order) -> None:
    data = jpeg((640, 480))
    index = add_reference(ws, order.receipt_id, "dog.JPG", data)
    full = client.get(f"/files/{order.receipt_id}/ref/{index}")
    assert full.status_code == 200 and full.data == data and full.mimetype == "image/jpeg"
    assert client.get(f"/files/{order.receipt_id}/ref/{index}/thumb").data == data  # no thumb made: the file


@pytest.mark.parametrize("name", ["../order.yaml", "../../../../etc/passwd", "/etc/passwd", "sub/../../order.yaml",
                                  "evil.html", "note.svg", ".."])
def test_hostile_reference_names(client: FlaskClient, ws: Workspace, order: Order, name: str) -> None:
    with ws.edit(order.receipt_id) as o:
        o.references.append(Reference(name=name, source="buyer"))
    (ws.folder_of(order.receipt_id) / "references" / "evil.html").write_text("<script>alert(1)</script>")
    (ws.folder_of(order.receipt_id) / "references" / "note.svg").write_text("<svg onload='alert(1)'/>")
    index = len(ws.load(order.receipt_id).references) - 1
    assert client.get(f"/files/{order.receipt_id}/ref/{index}").status_code == 404
    assert client.get(f"/files/{order.receipt_id}/ref/{index}/thumb").status_code == 404


def test_symlink_out_of_references_is_refused(client: FlaskClient, ws: Workspace, order: Order) -> None:
    outside = ws.root / "private.jpg"
    outside.write_bytes(jpeg())
    os.symlink(outside, ws.folder_of(order.receipt_id) / "references" / "link.jpg")
    with ws.edit(order.receipt_id) as o:
        o.references.append(Reference(name="link.jpg", source="buyer"))
    index = len(ws.load(order.receipt_id).references) - 1
    assert client.get(f"/files/{order.receipt_id}/ref/{index}").status_code == 404


def test_failed_reference_is_not_served(client: FlaskClient, ws: Workspace, order: Order) -> None:
    index = add_reference(ws, order.receipt_id, "half.jpg", jpeg(), status="failed", error="timed out")
    assert client.get(f"/files/{order.receipt_id}/ref/{index}").status_code == 404
    html = client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}").get_data(as_text=True)
    assert "timed out" in html


def test_non_browser_reference_shows_its_thumbnail(client: FlaskClient, ws: Workspace, order: Order) -> None:
    thumb = ws.previews_dir / str(order.receipt_id) / "ref-0-thumb.jpg"
    thumb.parent.mkdir(parents=True, exist_ok=True)
    thumb.write_bytes(jpeg((100, 100)))
    index = add_reference(ws, order.receipt_id, "photo.heic", b"\x00\x00\x00\x18ftypheic",
                          thumb=ws.relative_to_tool(thumb))
    response = client.get(f"/files/{order.receipt_id}/ref/{index}")
    assert response.status_code == 200 and response.data == thumb.read_bytes()


def test_manifest_and_secrets_never_served(client: FlaskClient, ws: Workspace, order: Order) -> None:
    """Whatever the URL, a manifest, a secret or the index never comes out."""
    secret = (ws.secrets_dir / "review_password").read_bytes()
    manifest = (ws.folder_of(order.receipt_id) / "order.yaml").read_bytes()
    for path in ("/order.yaml", "/files/order.yaml", f"/files/{order.receipt_id}/order.yaml",
                 "/static/../../.kaalwatch/secrets/review_password", "/.kaalwatch/index.sqlite"):
        response = client.get(path)
        assert response.status_code == 404
        assert secret not in response.data and manifest not in response.data
