"""The completeness table (kaalwatch/imaging/complete.py): for every format in it, a whole file passes and
the same file cut short (or, for closed formats without a structure, nothing at all) is judged."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from kaalwatch.imaging.complete import DEFAULT, RULES, incomplete, rule_for
from tests.watch.helpers import kra, ora, procreate, psd, zip_with


def picture() -> Image.Image:
    im = Image.new("RGB", (96, 64), (20, 120, 200))
    im.paste((200, 40, 40), (10, 10, 50, 40))
    return im


def pillow(fmt: str, **kw: object) -> Callable[[], bytes]:
    def make() -> bytes:
        buf = io.BytesIO()
        picture().save(buf, fmt, **kw)
        return buf.getvalue()
    return make


def layered_tiff() -> bytes:
    buf = io.BytesIO()
    picture().save(buf, "TIFF", save_all=True, append_images=[picture().rotate(90)])
    return buf.getvalue()


def rle_psd() -> bytes:
    """A PSD whose merged image is RLE (PackBits) compressed: the byte-count table gives its length."""
    w, h, channels = 8, 4, 3
    rows = [bytes([0xF9, 0x7F]) for _ in range(channels * h)]  # PackBits: repeat 0x7F 8 times
    out = b"8BPS" + struct.pack(">H6xHIIHH", 1, channels, h, w, 8, 3) + struct.pack(">III", 0, 0, 0)
    return out + struct.pack(">H", 1) + struct.pack(f">{len(rows)}H", *map(len, rows)) + b"".join(rows)


def heic() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return pillow("HEIF")()


def jxl_container() -> bytes:
    """JPEG XL in its ISO BMFF container (signature box, ftyp, then the codestream in a jxlc box)."""
    codestream = pillow("JXL")()
    return (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + struct.pack(">I", 20) + b"ftypjxl \x00\x00\x00\x00jxl "
            + struct.pack(">I", 8 + len(codestream)) + b"jxlc" + codestream)


def clip() -> bytes:
    body = b"CHNKHead" + struct.pack(">Q", 40) + bytes(40) + b"CHNKExta" + struct.pack(">Q", 9) + b"layerdata"
    body += b"CHNKFoot" + struct.pack(">Q", 0)
    return b"CSFCHUNK" + struct.pack(">QQ", 24 + len(body), 24) + body


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n'


def closed() -> bytes:
    return b"\x00\xffKA" + bytes(range(256)) * 8


#: suffix -> a complete file of that format. Every suffix of the table has one (checked below).
SAMPLES: dict[str, Callable[[], bytes]] = {
    ".png": pillow("PNG"), ".jpg": pillow("JPEG"), ".jpeg": pillow("JPEG"), ".jpe": pillow("JPEG"),
    ".jfif": pillow("JPEG"), ".tif": layered_tiff, ".tiff": pillow("TIFF", compression="tiff_lzw"),
    ".psd": psd, ".psb": rle_psd, ".webp": pillow("WEBP"), ".bmp": pillow("BMP"), ".gif": pillow("GIF"),
    ".kra": kra, ".ora": ora, ".procreate": procreate, ".avif": pillow("AVIF"), ".jxl": jxl_container,
    ".heic": heic, ".heif": heic, ".hif": heic, ".clip": clip, ".pdf": pdf, ".ai": pdf, ".svg": svg,
    ".af": closed, ".afphoto": closed, ".afdesign": closed, ".sai": closed, ".sai2": closed, ".mdp": closed,
    ".pdn": closed, ".pxd": closed, ".xcf": closed, ".csp": closed,
}


def test_every_format_in_the_table_has_a_sample() -> None:
    assert set(SAMPLES) == set(RULES)


@pytest.mark.parametrize("suffix", sorted(RULES))
def test_a_whole_file_is_complete_and_a_cut_one_is_not(suffix: str, tmp_path: Path) -> None:
    if suffix == ".jxl":
        pytest.importorskip("pillow_jxl", reason="the jxl extra is not installed")
    data = SAMPLES[suffix]()
    whole = tmp_path / f"whole{suffix}"
    whole.write_bytes(data)
    assert incomplete(whole) is None, suffix
    rule = rule_for(whole)
    if rule.check is DEFAULT.check:
        assert not rule.decoded  # no structure known: the longer quiet period is its only guard
        return
    for keep in (len(data) // 2, len(data) - max(2, len(data) // 20)):  # half, or only its last bytes missing
        cut = tmp_path / f"cut{keep}{suffix}"
        cut.write_bytes(data[:keep])
        assert incomplete(cut), f"{suffix} cut to {keep} of {len(data)} bytes"


def test_a_zip_container_written_member_by_member_is_incomplete_until_its_directory(tmp_path: Path) -> None:
    data = zip_with({"mergedimage.png": pillow("PNG")(), "maindoc.xml": b"<doc/>" * 100})
    start = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x05\x06"))
    path = tmp_path / "a.kra"
    path.write_bytes(data[: data.find(b"PK\x01\x02")])  # every member, no central directory yet
    assert incomplete(path) == "has no complete ZIP directory yet"
    path.write_bytes(data)
    assert incomplete(path) is None and start > 0


def test_jpeg_padding_after_its_end_marker_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(pillow("JPEG")() + bytes(16))
    assert incomplete(path) is None


def _mp4(payload: int) -> bytes:
    """A minimal MP4 as phones append it to a motion photo: ftyp, then an mdat box of ``payload`` bytes."""
    return (struct.pack(">I", 16) + b"ftypmp42" + b"\x00" * 4
            + struct.pack(">I", 8 + payload) + b"mdat" + bytes(range(256)) * (payload // 256) + bytes(payload % 256))


@pytest.mark.parametrize("progressive", [False, True])
def test_a_motion_photo_is_complete_only_with_its_whole_video(progressive: bool, tmp_path: Path) -> None:
    """Google and Samsung motion photos put an MP4 after the JPEG's EOI: the file does not end with EOI."""
    still = pillow("JPEG", progressive=progressive, exif=Image.Exif())()
    video = _mp4(5000)
    path = tmp_path / "PXL_20261129_MP.jpg"
    path.write_bytes(still + video)
    assert incomplete(path) is None
    for cut in (len(still) + 10, len(still) + len(video) // 2, len(still) + len(video) - 1):
        path.write_bytes((still + video)[:cut])
        assert incomplete(path) == "is cut off inside its appended video", cut


def test_a_photo_cut_inside_its_scan_is_incomplete_whatever_follows(tmp_path: Path) -> None:
    """The first image's EOI is found by walking segments and scans: FF bytes of the scan data are stuffed,
    so the walk cannot take an embedded thumbnail's or a stray FFD9 for the end."""
    still = pillow("JPEG", progressive=True, restart_marker_blocks=1)()
    path = tmp_path / "a.jpg"
    path.write_bytes(still + b"SEFH" + bytes(40) + b"SEFT")  # Samsung's trailer after a whole image
    assert incomplete(path) is None
    for cut in range(len(still) // 3, len(still) - 2, max(1, len(still) // 40)):
        path.write_bytes(still[:cut] + b"\x12\x34")  # cut, and not ending with EOI
        assert incomplete(path) == "ends without its end-of-image marker", cut


def test_a_bare_jpeg_xl_codestream_passes_the_table_and_is_left_to_its_decoder(tmp_path: Path) -> None:
    pytest.importorskip("pillow_jxl", reason="the jxl extra is not installed")
    path = tmp_path / "a.jxl"
    path.write_bytes(pillow("JXL")())
    assert incomplete(path) is None and rule_for(path).decoded


def test_hostile_headers_never_raise(tmp_path: Path) -> None:
    hostile = (b"\x00", b"\xff" * 40, b"8BPS" + b"\xff" * 60, b"II*\x00\xff\xff\xff\x7f", b"CSFCHUNK" + b"\xff" * 24)
    for suffix in RULES:
        for data in hostile:
            path = tmp_path / f"x{suffix}"
            path.write_bytes(data)
            result = incomplete(path)
            assert result is None or isinstance(result, str)
