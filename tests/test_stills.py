"""Still photos: EXIF orientation (the network sees the picture upright, every viewer shows the output
upright) and the metadata an archive keeps (EXIF, XMP, ICC) carried into the coloured file."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from filmcolor import pipeline, preview, stills
from filmcolor.config import RunConfig
from helpers import besides_colour, tiny_model

EXIF, XMP, ICC = stills.EXIF, stills.XMP, stills.ICC
XMP_PACKET = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:source="reel 7"/></rdf:RDF></x:xmpmeta>')


def make_exif(orientation: int | None, description: bytes = b"Harbour, 1931", big_endian: bool = True) -> bytes:
    """A minimal TIFF-structured EXIF block: ImageDescription (0x010E) and, if given, Orientation."""
    e = ">" if big_endian else "<"
    entries = [(0x010E, 2, len(description) + 1, None)]
    if orientation is not None:
        entries.append((0x0112, 3, 1, orientation))
    data_at = 8 + 2 + 12 * len(entries) + 4
    body = struct.pack(e + "H", len(entries))
    for tag, kind, count, value in entries:
        field = struct.pack(e + "I", data_at) if value is None else struct.pack(e + "HH", value, 0)
        body += struct.pack(e + "HHI", tag, kind, count) + field
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    return head + body + struct.pack(e + "I", 0) + description + b"\0"


def write_with_metadata(path: Path, bgr: np.ndarray, metadata: dict[int, bytes]) -> Path:
    kinds = sorted(metadata)
    assert cv2.imwriteWithMetadata(str(path), bgr, kinds, [np.frombuffer(metadata[k], np.uint8) for k in kinds])
    return path


def asymmetric_bgr(h: int = 40, w: int = 64) -> np.ndarray:
    """A picture that looks different under every one of the 8 orientations."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x + 2 * y) % 97) * 2], axis=-1).astype(np.uint8)
    img[:6, :10] = (0, 0, 255)  # a red block in the top-left corner
    return img


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def config(model_path: Path, **kw) -> RunConfig:
    return RunConfig(model=str(model_path), device="cpu", render_size=48, batch_size=4, **kw)


def read_metadata(path: Path) -> dict[int, bytes]:
    _img, kinds, chunks = cv2.imreadWithMetadata(str(path), cv2.IMREAD_UNCHANGED)
    return {int(k): np.asarray(c, np.uint8).tobytes() for k, c in zip(np.ravel(kinds), chunks)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_still_turns_the_pixels_as_opencv_displays_them(tmp_path, orientation):
    stored = asymmetric_bgr()
    src = write_with_metadata(tmp_path / "p.png", stored, {EXIF: make_exif(orientation)})
    displayed = cv2.imread(str(src), cv2.IMREAD_COLOR)  # OpenCV's own EXIF handling: the reference
    still = stills.read_still(src)
    assert still.orientation == orientation
    assert still.rgb.shape == displayed.shape
    np.testing.assert_array_equal(np.rint(still.rgb * 255).astype(np.uint8), displayed[..., ::-1])
    assert still.L.shape == displayed.shape[:2]
    assert stills.exif_orientation(still.metadata[EXIF]) == 1  # the kept EXIF matches the turned pixels


@pytest.mark.parametrize("big_endian", [True, False])
def test_exif_orientation_parse_and_reset(big_endian):
    block = make_exif(8, big_endian=big_endian)
    assert stills.exif_orientation(block) == 8
    assert stills.exif_orientation(b"Exif\0\0" + block) == 8
    reset = stills.exif_set_upright(b"Exif\0\0" + block)
    assert stills.exif_orientation(reset) == 1 and len(reset) == len(block) + 6
    diff = [i for i, (a, b) in enumerate(zip(reset[6:], block)) if a != b]
    assert len(diff) == 1  # only the orientation's value byte changed
    assert stills.exif_orientation(make_exif(None, big_endian=big_endian)) == 1
    assert stills.exif_set_upright(make_exif(None)) == make_exif(None)
    for damaged in (b"", b"MM\0*", b"XX\0*\0\0\0\x08", block[:14], make_exif(9)):
        assert stills.exif_orientation(damaged) == 1


def test_rotated_photo_is_coloured_upright_and_keeps_its_exif(tmp_path, model_path):
    upright_bgr = asymmetric_bgr()
    stored = cv2.rotate(upright_bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)  # what a camera held sideways stores
    src = write_with_metadata(tmp_path / "scan.png", stored, {EXIF: make_exif(6)})
    plain = write_with_metadata(tmp_path / "plain.png", upright_bgr, {})
    warnings: list[str] = []
    out = pipeline.colorize_file(src, tmp_path / "out.png", config(model_path), warn=warnings.append).dst
    ref = pipeline.colorize_file(plain, tmp_path / "ref.png", config(model_path)).dst
    coloured, expected = cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.imread(str(ref), cv2.IMREAD_UNCHANGED)
    assert coloured.shape == upright_bgr.shape  # written upright ...
    np.testing.assert_array_equal(coloured, expected)  # ... and coloured as the upright picture is
    meta = read_metadata(out)
    assert stills.exif_orientation(meta[EXIF]) == 1 and b"Harbour, 1931" in meta[EXIF]
    assert besides_colour(warnings) == []
    assert cv2.imread(str(out), cv2.IMREAD_COLOR).shape == upright_bgr.shape  # an EXIF-aware reader agrees


def test_jpeg_keeps_exif_and_a_colour_source_keeps_its_icc_profile(tmp_path, model_path):
    image_cms = pytest.importorskip("PIL.ImageCms")  # a real profile (libpng checks it); Pillow comes with scikit-image
    icc = image_cms.ImageCmsProfile(image_cms.createProfile("sRGB")).tobytes()
    src = write_with_metadata(tmp_path / "c.png", asymmetric_bgr(), {EXIF: make_exif(None), ICC: icc})
    out = pipeline.colorize_file(src, tmp_path / "c.jpg", config(model_path)).dst
    meta = read_metadata(out)
    assert b"Harbour, 1931" in meta[EXIF] and meta[ICC] == icc


def test_grey_source_drops_its_grey_icc_profile(tmp_path, model_path):
    grey = cv2.cvtColor(asymmetric_bgr(), cv2.COLOR_BGR2GRAY)
    image_cms = pytest.importorskip("PIL.ImageCms")
    icc = image_cms.ImageCmsProfile(image_cms.createProfile("sRGB")).tobytes()  # stands in for a grey profile
    src = write_with_metadata(tmp_path / "g.jpg", grey, {EXIF: make_exif(None), ICC: icc})  # (libpng checks the colour space)
    assert ICC in stills.read_still(src).metadata
    out = pipeline.colorize_file(src, tmp_path / "g.color.png", config(model_path)).dst
    meta = read_metadata(out)
    assert EXIF in meta and ICC not in meta
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == grey.shape + (3,)


def test_xmp_is_left_out_with_a_warning_not_written_corrupt(tmp_path, model_path):
    webp = tmp_path / "x.webp"  # WebP is where OpenCV reads and writes XMP intact
    assert cv2.imwriteWithMetadata(str(webp), asymmetric_bgr(), [EXIF, XMP],
                                   [np.frombuffer(make_exif(None), np.uint8), np.frombuffer(XMP_PACKET, np.uint8)])
    assert stills.read_still(webp).metadata[XMP] == XMP_PACKET
    for suffix in (".jpg", ".png", ".webp"):
        warnings: list[str] = []
        out = pipeline.colorize_file(webp, tmp_path / f"out{suffix}", config(model_path), warn=warnings.append).dst
        meta = read_metadata(out)
        assert XMP not in meta and b"Harbour, 1931" in meta[EXIF]
        notes = besides_colour(warnings)
        assert len(notes) == 1 and "XMP" in notes[0] and "EXIF" not in notes[0].split("(")[0]


def test_tiff_output_is_upright_and_warns_what_it_cannot_keep(tmp_path, model_path):
    stored = cv2.rotate(asymmetric_bgr(), cv2.ROTATE_90_CLOCKWISE)
    src = write_with_metadata(tmp_path / "s.png", stored, {EXIF: make_exif(8)})
    warnings: list[str] = []
    out = pipeline.colorize_file(src, tmp_path / "s.tif", config(model_path), warn=warnings.append).dst
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == asymmetric_bgr().shape
    notes = besides_colour(warnings)
    assert len(notes) == 1 and "EXIF" in notes[0].split("(")[0] and "s.tif" in notes[0]
    quiet: list[str] = []
    pipeline.colorize_file(write_with_metadata(tmp_path / "n.png", stored, {}), tmp_path / "n.tif", config(model_path),
                           warn=quiet.append)
    assert besides_colour(quiet) == []  # nothing to lose, nothing to say


def test_preview_of_a_rotated_still_is_upright(tmp_path, model_path):
    stored = cv2.rotate(asymmetric_bgr(), cv2.ROTATE_90_COUNTERCLOCKWISE)
    src = write_with_metadata(tmp_path / "r.png", stored, {EXIF: make_exif(6)})
    sheet = cv2.imread(str(preview.write_preview(src, None, 1, config(model_path)).dst))
    assert sheet.shape == (40, 2 * 64, 3)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_tiff_orientation_tag_is_applied_even_where_opencv_cannot_read_the_file(tmp_path, orientation):
    image = pytest.importorskip("PIL.Image")  # writes TIFF orientation tags; Pillow comes with scikit-image
    ops = pytest.importorskip("PIL.ImageOps")
    stored = asymmetric_bgr()[..., ::-1].copy()
    src = tmp_path / "scan.tif"
    pic = image.fromarray(stored)
    exif = pic.getexif()
    exif[0x0112] = orientation
    pic.save(src, exif=exif)
    assert stills.tiff_orientation(src) == orientation
    displayed = np.asarray(ops.exif_transpose(image.open(src)).convert("RGB"))
    still = stills.read_still(src)
    assert still.orientation == orientation
    np.testing.assert_array_equal(np.rint(still.rgb * 255).astype(np.uint8), displayed)


def test_a_profile_the_png_library_rejects_is_left_out_not_the_photo(tmp_path, model_path):
    bad_icc = b"\0\0\x02\x4cnot-a-profile" + bytes(576)  # JPEG carries any bytes; libpng checks them
    src = write_with_metadata(tmp_path / "c.jpg", asymmetric_bgr(), {EXIF: make_exif(None), ICC: bad_icc})
    warnings: list[str] = []
    out = pipeline.colorize_file(src, tmp_path / "c.png", config(model_path), warn=warnings.append).dst
    meta = read_metadata(out)
    assert EXIF in meta and ICC not in meta
    assert len(besides_colour(warnings)) == 1 and "ICC profile" in besides_colour(warnings)[0]


@pytest.mark.parametrize("ext", [".jp2", ".pgm", ".ppm"])
def test_jpeg_2000_and_pnm_scans_are_photos(tmp_path, model_path, ext):
    # before, a .jp2 scan went down the film path and came out as a one-frame .mkv
    src = tmp_path / f"scan{ext}"
    grey = asymmetric_bgr()[..., 1]
    assert cv2.imwrite(str(src), grey if ext != ".ppm" else cv2.merge([grey] * 3))
    result = pipeline.colorize_file(src, config=config(model_path))
    assert result.kind == "still" and result.dst == tmp_path / "scan.color.png"
    out = cv2.imread(str(result.dst), cv2.IMREAD_UNCHANGED)
    assert out.shape == (*grey.shape, 3) and np.abs(out[..., 0].astype(int) - out[..., 2]).max() > 10  # coloured


def test_multi_page_tiff_says_only_the_first_page_is_coloured(tmp_path, model_path):
    src = tmp_path / "pages.tif"
    pages = [asymmetric_bgr()[..., 0], asymmetric_bgr()[..., 1]]
    assert cv2.imwritemulti(str(src), pages)
    warnings: list[str] = []
    pipeline.colorize_file(src, tmp_path / "out.png", config(model_path), warn=warnings.append)
    assert warnings == [f"{src}: has 2 pages; only the first is coloured"]


def test_a_jpeg_cut_short_is_coloured_with_a_warning(tmp_path, model_path):
    whole = tmp_path / "whole.jpg"
    img = np.ascontiguousarray(np.tile(asymmetric_bgr(), (8, 8, 1)))  # 320x512: many MCU rows
    assert cv2.imwrite(str(whole), img)
    data = whole.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    appended = tmp_path / "motion.jpg"  # a camera's trailer after the image (e.g. a motion photo's video)
    appended.write_bytes(data + b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    assert not stills.jpeg_cut_short(whole) and not stills.jpeg_cut_short(appended)
    assert stills.jpeg_cut_short(cut)
    # an end-of-image marker inside the EXIF block (a thumbnail's) is not the picture's own
    thumb = write_with_metadata(tmp_path / "thumb.jpg", img, {EXIF: make_exif(1) + b"\xff\xd8\xff\xd9"})
    thumb_cut = tmp_path / "thumb_cut.jpg"
    thumb_cut.write_bytes(thumb.read_bytes()[: len(thumb.read_bytes()) // 2])
    assert not stills.jpeg_cut_short(thumb) and stills.jpeg_cut_short(thumb_cut)
    warnings: list[str] = []
    result = pipeline.colorize_file(cut, tmp_path / "out.png", config(model_path), warn=warnings.append)
    assert result.dst.is_file() and len(besides_colour(warnings)) == 1 and "stops early" in besides_colour(warnings)[0]
    warnings.clear()
    pipeline.colorize_file(appended, tmp_path / "out2.png", config(model_path), warn=warnings.append)
    assert besides_colour(warnings) == []


def make_exif_with_thumbnail(thumb: bytes, big_endian: bool = True) -> bytes:
    """IFD0 (ImageDescription) linked to IFD1, which points at a JPEG thumbnail ending the block."""
    e = ">" if big_endian else "<"
    desc = b"Harbour, 1931\0"
    ifd0 = 8
    ifd1 = ifd0 + 2 + 12 + 4
    desc_at = ifd1 + 2 + 24 + 4
    thumb_at = desc_at + len(desc)
    body = struct.pack(e + "H", 1) + struct.pack(e + "HHII", 0x010E, 2, len(desc), desc_at) + struct.pack(e + "I", ifd1)
    body += struct.pack(e + "H", 2) + struct.pack(e + "HHII", 0x0201, 4, 1, thumb_at) \
        + struct.pack(e + "HHII", 0x0202, 4, 1, len(thumb)) + struct.pack(e + "I", 0)
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, ifd0)
    return head + body + desc + thumb


@pytest.mark.parametrize("big_endian", [True, False])
def test_the_black_and_white_exif_thumbnail_is_not_carried(tmp_path, model_path, big_endian):
    # viewers show a file's EXIF thumbnail: copied as is, the coloured photo showed a B&W one
    thumb = bytes(cv2.imencode(".jpg", asymmetric_bgr(8, 12)[..., 1])[1])
    exif = make_exif_with_thumbnail(thumb, big_endian)
    cut = stills.exif_without_thumbnail(b"Exif\0\0" + exif)
    assert cut.startswith(b"Exif\0\0") and thumb not in cut and len(cut) == 6 + len(exif) - len(thumb)
    e = ">" if big_endian else "<"
    assert struct.unpack(e + "I", cut[6 + 8 + 2 + 12: 6 + 8 + 2 + 12 + 4]) == (0,)  # IFD0 links to nothing
    assert b"Harbour, 1931" in cut
    plain = make_exif(6)
    assert stills.exif_without_thumbnail(plain) == plain  # no thumbnail: byte for byte
    assert stills.exif_without_thumbnail(b"\x00junk") == b"\x00junk"
    src = write_with_metadata(tmp_path / "scan.jpg", asymmetric_bgr(), {EXIF: exif})
    out = pipeline.colorize_file(src, tmp_path / "out.jpg", config(model_path)).dst
    kept = read_metadata(out)[EXIF]
    assert b"Harbour, 1931" in kept and thumb not in kept
