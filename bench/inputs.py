"""The preview benchmark's inputs: artwork-like pixels saved the way the tools artists use save them.

Each ``Input`` is generated once into ``bench/.data/`` (git-ignored). Pixels: smooth gradients, shapes,
lines and low-amplitude noise, which compress like painted art, not like flat colour. Files: JPEG q92
4:2:0 (camera and phone default), PNG at zlib level 6 (8-bit RGB/RGBA, and 16-bit written directly since
Pillow cannot write 16-bit colour PNG), layered TIFF with LZW (Photoshop's usual choice), PSD with a
PackBits composite (as Photoshop writes it), Krita ``.kra`` and OpenRaster ``.ora`` (ZIP: a
``mergedimage.png`` beside the layer data) and HEIC (through pillow-heif, when installed).

Every timed save must be new bytes (a re-save of known bytes is not a version), so ``save_variant``
writes a copy that differs only in a marker the decoders skip: a PNG ``tEXt`` chunk, a JPEG comment
segment, a ZIP archive comment, an ISOBMFF ``free`` box for HEIC, trailing bytes for TIFF and PSD.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

#: Length of the ZIP archive comment that ``save_variant`` overwrites in place.
_ZIP_COMMENT = b"kaalwatch-bench-00000000"


@dataclass(frozen=True)
class Input:
    """One benchmark input: ``fmt`` is jpeg, png, png16, tiff, psd, kra, ora or heic."""

    label: str
    fmt: str
    size: tuple[int, int]
    alpha: bool = False
    seed: int = 0

    @property
    def suffix(self) -> str:
        return {"jpeg": ".jpg", "png": ".png", "png16": ".png", "tiff": ".tif", "psd": ".psd", "kra": ".kra",
                "ora": ".ora", "heic": ".heic"}[self.fmt]

    @property
    def file_name(self) -> str:
        w, h = self.size
        return f"{self.fmt}{'a' if self.alpha else ''}_{w}x{h}{self.suffix}"


def artwork(w: int, h: int, seed: int, alpha: bool = False) -> Image.Image:
    """Gradients + shapes + low-amplitude noise: compresses like painted art, not like flat colour."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    base = Image.merge("RGB", [
        Image.fromarray((40 + 170 * x * (1 - 0.3 * y)).astype(np.uint8)),
        Image.fromarray((60 + 150 * y + 0 * x).astype(np.uint8)),
        Image.fromarray((200 - 140 * (x * y)).astype(np.uint8)),
    ])
    draw = ImageDraw.Draw(base)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        rw, rh = int(rng.integers(w // 30 + 1, w // 4 + 2)), int(rng.integers(h // 30 + 1, h // 4 + 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + rw, y0 + rh), fill=colour)
        else:
            draw.line((x0, y0, x0 + rw, y0 + rh), fill=colour, width=max(1, w // 200))
    # Brush/paper texture: +-6 levels of noise, added band by band to keep memory modest.
    arr = np.asarray(base).copy()
    del base
    step = 512
    for top in range(0, h, step):
        noise = rng.integers(-6, 7, size=arr[top:top + step].shape, dtype=np.int16)
        arr[top:top + step] = np.clip(arr[top:top + step].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if alpha:
        a = Image.new("L", (w, h), 0)
        ImageDraw.Draw(a).ellipse((w * 0.05, h * 0.05, w * 0.95, h * 0.95), fill=255)
        im.putalpha(a)
    return im


def _packbits_rows(channel: Image.Image) -> list[bytes]:
    """PackBits-encode each row of an L image, using libtiff's encoder through a one-row-per-strip TIFF."""
    buf = io.BytesIO()
    channel.save(buf, "TIFF", compression="packbits", strip_size=channel.width)
    buf.seek(0)
    with Image.open(buf) as tif:
        offsets = tif.tag_v2[273]
        counts = tif.tag_v2[279]
    raw = buf.getvalue()
    rows = [raw[o:o + c] for o, c in zip(offsets, counts, strict=True)]
    if len(rows) != channel.height:
        raise RuntimeError("libtiff did not write one strip per row")
    return rows


def write_psd(im: Image.Image, path: Path, *, rle: bool = True, has_composite: bool = True) -> Path:
    """Write a minimal valid 8-bit RGB(A) PSD holding only the merged composite (no layers).

    Sections: header, empty colour-mode data, image resources (only 1057 version info, which says
    whether the composite is real), an empty layer-and-mask section, then the image data, RLE
    (PackBits per row with a table of row byte counts, as Photoshop writes it) or raw.
    """
    channels = im.split()
    w, h = im.size
    out = io.BytesIO()
    out.write(b"8BPS" + struct.pack(">H6xHIIHH", 1, len(channels), h, w, 8, 3))
    out.write(struct.pack(">I", 0))
    # version, hasRealMergedData, empty writer and reader names, file version (17 bytes, padded below)
    version_info = struct.pack(">IBIII", 1, 1 if has_composite else 0, 0, 0, 1)
    resource = b"8BIM" + struct.pack(">H", 1057) + b"\x00\x00" + struct.pack(">I", len(version_info))
    resource += version_info + (b"\x00" if len(version_info) % 2 else b"")
    out.write(struct.pack(">I", len(resource)) + resource)
    out.write(struct.pack(">I", 0))
    if rle:
        all_rows = [_packbits_rows(c) for c in channels]
        out.write(struct.pack(">H", 1))
        for rows in all_rows:
            out.write(struct.pack(f">{len(rows)}H", *(len(r) for r in rows)))
        for rows in all_rows:
            out.write(b"".join(rows))
    else:
        out.write(struct.pack(">H", 0))
        for c in channels:
            out.write(c.tobytes())
    path.write_bytes(out.getvalue())
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(im: Image.Image, path: Path, seed: int) -> Path:
    """Write ``im`` (RGB or RGBA) as a 16-bit PNG whose low bytes carry real detail (not v * 257)."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(im)
    h, w, channels = arr.shape
    colour = {3: 2, 4: 6}[channels]
    packer = zlib.compressobj(6)
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))]
    idat = []
    for top in range(0, h, 256):
        band = arr[top:top + 256].astype(np.uint16) * 257
        band += rng.integers(0, 200, size=band.shape, dtype=np.uint16)
        rows = band.astype(">u2").reshape(band.shape[0], -1).view(np.uint8)
        framed = np.concatenate([np.zeros((band.shape[0], 1), np.uint8), rows], axis=1)  # filter 0 per row
        idat.append(packer.compress(framed.tobytes()))
    idat.append(packer.flush())
    parts += [_chunk(b"IDAT", b"".join(idat)), _chunk(b"IEND", b"")]
    path.write_bytes(b"".join(parts))
    return path


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def write_layered_zip(im: Image.Image, path: Path, fmt: str, seed: int) -> Path:
    """A Krita or OpenRaster document: mimetype (stored, first), the stack XML, two layers and the merged
    image, each PNG deflated again by the ZIP as both tools do."""
    layer = artwork(im.width, im.height, seed + 100, alpha=True)
    mimetype = b"application/x-krita" if fmt == "kra" else b"image/openraster"
    stack = "maindoc.xml" if fmt == "kra" else "stack.xml"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        zf.writestr(stack, f'<image w="{im.width}" h="{im.height}"><stack><layer src="data/layer1.png"/>'
                           '<layer src="data/layer0.png"/></stack></image>')
        zf.writestr("data/layer0.png", _png(im))
        zf.writestr("data/layer1.png", _png(layer))
        zf.writestr("mergedimage.png", _png(im))
        zf.comment = _ZIP_COMMENT
    return path


def make(spec: Input, directory: Path) -> Path:
    """Generate (once) the file for ``spec`` in ``directory``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.file_name
    if path.exists():
        return path
    tmp = path.with_name(f".tmp-{path.name}")
    w, h = spec.size
    im = artwork(w, h, spec.seed, alpha=spec.alpha)
    if spec.fmt == "jpeg":
        im.save(tmp, "JPEG", quality=92)
    elif spec.fmt == "png":
        im.save(tmp, "PNG", compress_level=6)
    elif spec.fmt == "png16":
        write_png16(im, tmp, spec.seed)
    elif spec.fmt == "tiff":
        layers = [artwork(w, h, spec.seed + 1, alpha=True), artwork(w, h, spec.seed + 2, alpha=True)]
        im.save(tmp, "TIFF", compression="tiff_lzw", save_all=True, append_images=layers)
    elif spec.fmt == "psd":
        write_psd(im, tmp)
    elif spec.fmt in ("kra", "ora"):
        write_layered_zip(im, tmp, spec.fmt, spec.seed)
    elif spec.fmt == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
        im.save(tmp, "HEIF", quality=85)
    else:
        raise ValueError(f"unknown input format {spec.fmt}")
    os.replace(tmp, path)
    return path


def save_variant(spec: Input, source: Path, target: Path, n: int) -> None:
    """Write ``source`` to ``target`` as new bytes (marker ``n``) that decode to the same pixels."""
    data = source.read_bytes()
    marker = f"{n:08d}".encode()
    if spec.fmt in ("png", "png16"):  # before IEND (the last 12 bytes)
        data = data[:-12] + _chunk(b"tEXt", b"kaalwatch-bench\x00" + marker) + data[-12:]
    elif spec.fmt == "jpeg":  # a COM segment right after SOI
        data = data[:2] + b"\xff\xfe" + struct.pack(">H", 2 + len(marker)) + marker + data[2:]
    elif spec.fmt in ("kra", "ora"):
        data = data[: -len(marker)] + marker  # the archive comment's tail
    elif spec.fmt == "heic":
        data += struct.pack(">I", 8 + len(marker)) + b"free" + marker
    else:
        data += b"kaalwatch-bench" + marker
    with open(target, "wb") as fh:  # the artist's save: a plain write, as an art tool does it
        fh.write(data)
