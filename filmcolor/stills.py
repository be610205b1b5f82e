"""Still photos in and out: the pixels, the EXIF orientation, and the metadata an archive keeps.

- :func:`read_still` -> :class:`Still`: the photo *as displayed*: the stored pixels turned by their
  EXIF orientation (1..8, 1 when absent; the network must see the sky at the top), as sRGB float
  and L*, with alpha, bit depth and the metadata chunks OpenCV found (EXIF, XMP, ICC), the EXIF's
  orientation reset to 1 to match the turned pixels and its thumbnail (of the uncoloured picture)
  left out.
- :func:`write_still`: the coloured picture with the source's metadata. JPEG, PNG and WebP outputs
  keep the EXIF block byte for byte (date, caption, camera...; as read above) and an
  ICC profile from a colour source (a grey profile cannot describe RGB, so it is left out). TIFF and
  BMP outputs get the pixels only. XMP is never written: OpenCV 5.0 writes it without the JPEG
  namespace header (readers skip it) and sometimes with stray bytes in PNG, so a copy would be a
  corrupt one; the caller is told instead. Pixels are always written upright, so every viewer shows
  the output the way it showed the input, whether or not it reads EXIF orientation.

OpenCV (>= 4.12) reads and writes the metadata (``imreadWithMetadata``/``imwriteWithMetadata``);
the orientation tag is read here from the EXIF block (a dozen lines of TIFF-header parsing). A TIFF
keeps its orientation in its own first directory, not in EXIF: OpenCV's TIFF decoder applies it
(tags 2..4) or refuses the file (5..8, OpenCV 5.0); those are read through tifffile and turned here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from . import color
from .errors import InputError, OutputError

EXIF, XMP, ICC = int(cv2.IMAGE_METADATA_EXIF), int(cv2.IMAGE_METADATA_XMP), int(cv2.IMAGE_METADATA_ICCP)
EXIF_FORMATS = frozenset({".jpg", ".jpeg", ".png", ".webp"})  # outputs OpenCV writes EXIF and ICC into
EIGHT_BIT_FORMATS = frozenset({".jpg", ".jpeg", ".webp", ".bmp"})
_ORIENTATION_TAG = 0x0112
_NAMES = {EXIF: "EXIF", ICC: "ICC profile", XMP: "XMP"}


@dataclass
class Still:
    """One photo as displayed: ``rgb`` (H, W, 3) float32 sRGB in [0, 1], ``L`` (H, W) float32 L*,
    ``alpha`` plane or None, ``bits`` of the output (8 or 16), ``orientation`` (the EXIF value the stored
    pixels were turned by, 1..8) and the metadata chunks ``{type: bytes}``; ``colour_source`` is False for a grey file."""
    rgb: np.ndarray
    L: np.ndarray
    alpha: np.ndarray | None
    bits: int
    orientation: int = 1
    metadata: dict[int, bytes] = field(default_factory=dict)
    colour_source: bool = True
    notes: list[str] = field(default_factory=list)  # what the caller should tell the user about the file


def _orientation_entry(read: Callable[[int, int], bytes]) -> tuple[int, int | None]:
    """(orientation 1..8, byte offset of its value or None) in IFD0 of a TIFF structure (an EXIF
    block or a TIFF file), given ``read(offset, size) -> bytes``."""
    head = read(0, 8)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return 1, None
    end = "<" if head[:2] == b"II" else ">"
    ifd = struct.unpack(end + "I", head[4:8])[0]
    count = read(ifd, 2)
    if len(count) < 2:
        return 1, None
    n = struct.unpack(end + "H", count)[0]
    entries = read(ifd + 2, 12 * n)
    for k in range(len(entries) // 12):
        entry = entries[12 * k: 12 * k + 12]
        tag, kind = struct.unpack(end + "HH", entry[:4])
        if tag == _ORIENTATION_TAG and kind == 3:  # SHORT, as the standard has it
            value = struct.unpack(end + "H", entry[8:10])[0]
            return (value, ifd + 2 + 12 * k + 8) if 1 <= value <= 8 else (1, None)
    return 1, None


def _bytes_reader(block: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, size: block[offset:offset + size]


def tiff_orientation(path: Path) -> int:
    """The Orientation tag (1..8) of a TIFF file's first image; 1 when absent or unreadable (OpenCV
    does not report it as metadata: a TIFF keeps it in its own first directory)."""
    try:
        with open(path, "rb") as f:
            def read(offset: int, size: int) -> bytes:
                f.seek(offset)
                return f.read(size)
            return _orientation_entry(read)[0]
    except OSError:
        return 1


def _strip_prefix(exif: bytes) -> tuple[bytes, bytes]:
    return (exif[:6], exif[6:]) if exif.startswith(b"Exif\0\0") else (b"", exif)


def exif_orientation(exif: bytes) -> int:
    """The Orientation tag (1..8) of an EXIF block (TIFF-structured, with or without the
    ``Exif\\0\\0`` prefix); 1 when it is missing, out of range or the block is damaged."""
    return _orientation_entry(_bytes_reader(_strip_prefix(exif)[1]))[0]


def exif_set_upright(exif: bytes) -> bytes:
    """The EXIF block with its Orientation tag (if any) set to 1; everything else byte for byte."""
    prefix, body = _strip_prefix(exif)
    _value, at = _orientation_entry(_bytes_reader(body))
    if at is None:
        return exif
    end = "<" if body[:2] == b"II" else ">"
    return prefix + body[:at] + struct.pack(end + "H", 1) + body[at + 2:]


def exif_without_thumbnail(exif: bytes) -> bytes:
    """The EXIF block without its embedded thumbnail (IFD1: a small copy of the *source* picture,
    which viewers show for the file - a black-and-white one on a coloured photo): the link to IFD1
    is cut and the thumbnail's JPEG bytes are dropped when they end the block (they do, as cameras
    and editors write it). Anything else, or a damaged block, is left byte for byte."""
    prefix, body = _strip_prefix(exif)
    if len(body) < 8 or body[:2] not in (b"II", b"MM"):
        return exif
    end = "<" if body[:2] == b"II" else ">"
    ifd0 = struct.unpack(end + "I", body[4:8])[0]
    if ifd0 + 2 > len(body):
        return exif
    link = ifd0 + 2 + 12 * struct.unpack(end + "H", body[ifd0:ifd0 + 2])[0]
    if link + 4 > len(body):
        return exif
    ifd1 = struct.unpack(end + "I", body[link:link + 4])[0]
    if ifd1 == 0 or ifd1 + 2 > len(body):
        return exif
    thumb = {}
    n = struct.unpack(end + "H", body[ifd1:ifd1 + 2])[0]
    for k in range(n):
        entry = body[ifd1 + 2 + 12 * k: ifd1 + 14 + 12 * k]
        if len(entry) == 12:
            tag, kind = struct.unpack(end + "HH", entry[:4])
            if tag in (0x0201, 0x0202) and kind == 4:  # JPEGInterchangeFormat(Length), LONG
                thumb[tag] = struct.unpack(end + "I", entry[8:12])[0]
    body = body[:link] + b"\0\0\0\0" + body[link + 4:]
    start, size = thumb.get(0x0201), thumb.get(0x0202)
    if start and size and start + size == len(body) and start > link + 4:
        body = body[:start]
    return prefix + body


def upright(a: np.ndarray, orientation: int) -> np.ndarray:
    """The stored image ``a`` (rows, columns[, channels]) as displayed under EXIF ``orientation``."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = np.swapaxes(a, 0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)  # 90 degrees clockwise
    elif orientation == 7:
        a = np.swapaxes(a[::-1, ::-1], 0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def read_still(src: Path) -> Still:
    """A JPEG/PNG/TIFF/WebP/BMP (grey or colour, 8 or 16 bit, optional alpha), turned upright by its
    EXIF orientation; raises InputError naming the file when it cannot be read."""
    img, kinds, chunks = cv2.imreadWithMetadata(str(src), cv2.IMREAD_UNCHANGED)
    tiff = Path(src).suffix.lower() in (".tif", ".tiff")
    turned = tiff  # OpenCV's TIFF decoder applies the file's orientation tag itself (2..4; it fails on 5..8)
    if (img is None or img.size == 0) and tiff:
        img, turned = _read_tiff(src), False
    if img is None or img.size == 0:
        raise InputError(src, "not a readable image (JPEG, PNG, TIFF, WebP, BMP, JPEG 2000 or PNM)")
    notes = []
    if Path(src).suffix.lower() in (".jpg", ".jpeg") and jpeg_cut_short(src):
        notes.append("the JPEG data stops early (file cut short): the decoder filled the rest of the "
                     "picture with grey, and it is coloured as it is")
    if tiff and (pages := cv2.imcount(str(src))) > 1:
        notes.append(f"has {pages} pages; only the first is coloured")
    metadata = {int(k): np.asarray(c, dtype=np.uint8).tobytes() for k, c in zip(np.ravel(kinds), chunks)}
    orientation = exif_orientation(metadata[EXIF]) if EXIF in metadata else tiff_orientation(src) if tiff else 1
    if orientation != 1 and not turned:  # the stored pixels (and alpha) as displayed
        img = upright(img, orientation)
        if EXIF in metadata:
            metadata[EXIF] = exif_set_upright(metadata[EXIF])
    if EXIF in metadata:  # its thumbnail shows the uncoloured picture
        metadata[EXIF] = exif_without_thumbnail(metadata[EXIF])
    if img.dtype == np.uint8:
        scale, bits = 255.0, 8
    elif img.dtype == np.uint16:
        scale, bits = 65535.0, 16
    elif img.dtype in (np.float32, np.float64):
        scale, bits = 1.0, 16
    else:
        raise InputError(src, f"unsupported sample type {img.dtype}")
    alpha = None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] == 4:
        alpha, img = img[..., 3].copy(), img[..., :3]
    elif img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        alpha, img = img[..., 1].copy(), img[..., 0]
    if img.ndim == 2:
        grey = np.clip(img.astype(np.float32) / np.float32(scale), 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        if img.dtype in (np.uint8, np.uint16):
            L = color.luma_to_L(img, bits, True)  # exact L* of an sRGB grey of that code value
        else:
            L = color.rgb_to_lab_np(rgb)[..., 0]
    elif img.ndim == 3 and img.shape[2] == 3:
        rgb = np.clip(img[..., ::-1].astype(np.float32) / np.float32(scale), 0, 1)
        L = color.rgb_to_lab_np(rgb)[..., 0]
    else:
        raise InputError(src, f"unsupported image layout {img.shape}")
    return Still(rgb, np.ascontiguousarray(L, dtype=np.float32), alpha, bits, orientation, metadata,
                 colour_source=img.ndim == 3, notes=notes)


def output_problem(dst: Path) -> str | None:
    """Why a coloured photo cannot be written to ``dst`` (None when it can): OpenCV must have a writer
    for its extension."""
    if cv2.haveImageWriter(str(dst)):
        return None
    suffix = Path(dst).suffix.lower()
    return (f"{suffix or 'a name without an extension'} is not a photo format filmcolor writes "
            "(.png, .jpg, .tif, .webp, .bmp, .jp2)")


def jpeg_cut_short(src: Path) -> bool:
    """Whether a JPEG file stops before its end-of-image marker (a transfer or copy cut short):
    libjpeg then fills the rest with grey without failing. The marker must follow the first scan
    (an EXIF thumbnail's comes before it); entropy-coded data cannot contain one, and data a camera
    appends after the marker (a motion photo's video) does not matter."""
    data = Path(src).read_bytes()
    if data[:2] != b"\xff\xd8":
        return False
    pos = 2
    while pos + 4 <= len(data):  # walk the marker segments up to the first scan (SOS)
        if data[pos] != 0xFF:
            return False  # not a marker where one must be: let the decoder judge
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return data.find(b"\xff\xd9", pos) < 0
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return True  # headers only, or cut inside them


def _read_tiff(src: Path) -> np.ndarray | None:
    """The first image of a TIFF that OpenCV refuses, through tifffile (scikit-image's own TIFF
    reader), as OpenCV would give it (BGR order); None if that fails too. OpenCV 5.0 cannot read a
    TIFF whose orientation tag turns it sideways (5..8)."""
    try:
        import tifffile

        with tifffile.TiffFile(src) as tif:
            img = tif.pages[0].asarray()
    except Exception:  # tifffile raises many types for damaged files; the caller reports it
        return None
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = np.concatenate([img[..., 2::-1], img[..., 3:]], axis=-1)
    return np.ascontiguousarray(img)


def _to_bgr(rgb: np.ndarray, bits: int) -> np.ndarray:
    top = 255.0 if bits == 8 else 65535.0
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.ascontiguousarray(np.rint(np.clip(rgb, 0, 1)[..., ::-1] * top).astype(dtype))


def write_image(path: Path, rgb: np.ndarray, bits: int = 8, alpha: np.ndarray | None = None,
                final: Path | None = None, metadata: dict[int, bytes] | None = None) -> None:
    """sRGB float (H, W, 3) -> image file by extension (8 bit where the format has no 16), with the
    given metadata chunks; ``final`` is the name errors report (``path`` may be a temporary file)."""
    if path.suffix.lower() in EIGHT_BIT_FORMATS:
        bits, alpha = 8, None
    img = _to_bgr(rgb, bits)
    if alpha is not None:
        a = alpha
        if a.dtype != img.dtype:
            a = (a.astype(np.float32) * (255.0 if bits == 8 else 65535.0) /
                 (255.0 if a.dtype == np.uint8 else 65535.0 if a.dtype == np.uint16 else 1.0))
            a = np.rint(np.clip(a, 0, 255.0 if bits == 8 else 65535.0)).astype(img.dtype)
        img = np.dstack([img, a])
    kinds = sorted(metadata or {})
    chunks = [np.frombuffer(metadata[k], dtype=np.uint8) for k in kinds]
    try:
        ok = cv2.imwriteWithMetadata(str(path), img, kinds, chunks)
    except cv2.error as exc:
        raise OutputError(final or path, f"cannot write image: {exc}") from exc
    if not ok:
        raise OutputError(final or path, "cannot write an image with this extension (use .png)")


def write_still(path: Path, rgb: np.ndarray, still: Still, final: Path | None = None) -> list[str]:
    """Write the coloured ``rgb`` (upright, the size of ``still``) with the metadata the format
    keeps (see the module docstring). Returns what of the source's metadata it left out, and why,
    one phrase each (for a warning)."""
    suffix = (final or path).suffix.lower()
    keep = {k: v for k, v in still.metadata.items() if k == EXIF or (k == ICC and still.colour_source)}
    dropped: list[str] = []
    if suffix not in EXIF_FORMATS:
        dropped = [f"{_NAMES[k]} ({suffix} output keeps none; .jpg, .png and .webp do)" for k in sorted(keep)]
        keep = {}
    try:
        write_image(path, rgb, still.bits, still.alpha, final, keep)
    except OutputError:
        if ICC not in keep:
            raise
        del keep[ICC]  # a profile the format's library rejects (libpng checks it) must not cost the photo
        write_image(path, rgb, still.bits, still.alpha, final, keep)
        dropped.append(f"ICC profile (the {suffix} writer rejected it)")
    if XMP in still.metadata:
        dropped.append("XMP (never copied: OpenCV writes it corrupt)")
    return dropped
