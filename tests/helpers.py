"""Test helpers: a tiny random generator whose output is not grey, hashing, and a film with labels."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from filmcolor import synth, tags, weights
from filmcolor.model import UNetGenerator, init_weights

TINY_ARGS = {"ngf": 4, "num_downs": 5}


def tiny_generator(seed: int = 0, bias: tuple[float, float] = (0.35, -0.3)) -> UNetGenerator:
    """A 5-down, 4-wide U-Net with random weights; the last layer's bias pushes ab away from 0 so
    the colour it adds is visible (a = +38, b = -33 before tanh saturation, roughly)."""
    torch.manual_seed(seed)
    model = UNetGenerator(**TINY_ARGS)
    init_weights(model)
    last = model.net.model[3]  # outermost ConvTranspose2d -> 2 channels, then tanh
    with torch.no_grad():
        last.bias.copy_(torch.tensor(bias))
    return model.eval()


def tiny_model(path: str | Path, **kwargs) -> Path:
    """Write ``tiny_generator()`` as a filmcolor weights file and return its path."""
    return weights.save_generator(tiny_generator(**kwargs), path, "unet", TINY_ARGS)


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- an archive film's labels ---------------------------------------------------------------------
D = av.stream.Disposition
COVER = bytes(cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))[1])
FONT = b"\x00\x01\x00\x00 not really a font"
STREAM_LABELS = [("eng", "picture", D.default, {"timecode": "01:00:00:00"}),
                 ("fra", "French dub", D.default, {}), ("eng", "Commentary", D.comment, {}),
                 ("eng", "Cues", D.forced, {})]


def labelled_film(dst: Path, color: bool = True) -> Path:
    """A 2 s film at ``dst`` (Matroska; 25 fps, a keyframe every 10 frames, two audio tracks,
    subtitles) with the labels an archive keeps: a title and comment, a language, title and flags
    per stream, a timecode on the picture, two chapters, a font attachment and a cover picture
    (Matroska attaches both)."""
    base = synth.make_clip(dst.with_name("base-" + dst.name), frames=50, audio=("aac", "libopus"),
                           subtitles=True, color=color, keyint=10)
    with av.open(str(base)) as inp, av.open(str(dst), "w") as out:
        out.metadata.update({"title": "Reel 3: The Harbour", "comment": "2K scan, 1952 print"})
        copies = {}
        for s, (lang, title, flags, extra) in zip(inp.streams, STREAM_LABELS):
            copies[s.index] = c = out.add_stream_from_template(s)
            c.metadata.update({"language": lang, "title": title, **extra})
            c.disposition = flags
        ms = Fraction(1, 1000)
        out.set_chapters([{"id": 1, "start": 0, "end": 1000, "time_base": ms, "metadata": {"title": "Opening"}},
                          {"id": 2, "start": 1000, "end": 2000, "time_base": ms, "metadata": {"title": "Harbour"}}])
        out.add_attachment("Caslon.ttf", "font/ttf", FONT)
        out.add_attachment("cover.jpg", "image/jpeg", COVER)
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    base.unlink()
    return dst


def read_labels(path: Path) -> dict:
    """What a player shows of a file's labels (comparable across MP4, MOV and Matroska)."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("video", "audio", "subtitle")
                   and not s.disposition & D.attached_pic]
        film = streams[0].metadata
        covers = [s for s in c.streams.video if s.disposition & D.attached_pic]
        cover = [bytes(p) for p in c.demux(covers[0]) if p.size][:1] if covers else []
        return {
            "title": c.metadata.get("title"), "comment": c.metadata.get("comment", c.metadata.get("COMMENT")),
            "streams": [(s.type, s.language, s.metadata.get("title", s.metadata.get("name")),
                         int(s.disposition & (D.default | D.comment | D.forced))) for s in streams],
            "timecode": film.get(tags.timecode_key(film) or "timecode"),
            "chapters": [(float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"]),
                          ch["metadata"].get("title")) for ch in c.chapters()],
            "attachments": [(a.name, bytes(a.data)) for a in c.streams.attachments],
            "cover": cover,
        }


def write_pictures(pattern: str | Path, codec: str, pix_fmt: str, pictures, *, source_format: str = "rgb24",
                   first: int | None = None, sar: Fraction | None = None) -> Path:
    """Encode ``pictures`` (arrays in ``source_format``) as numbered ``codec`` files named by the
    printf-style ``pattern`` (FFmpeg's image2, from ``first``: a film scan's layout); returns the folder."""
    pattern = Path(pattern)
    pattern.parent.mkdir(parents=True, exist_ok=True)
    h, w = pictures[0].shape[:2]
    options = {} if first is None else {"start_number": str(first)}
    with av.open(str(pattern), "w", format="image2", options=options) as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format=source_format)
            frame = frame.reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return pattern.parent


def grey_pictures(n: int, width: int = 64, height: int = 48) -> list:
    """``n`` synthetic B&W frames (RGB uint8), as ``write_grey_frames`` encodes them."""
    return [synth.synthetic_frame(i, width, height, color=False) for i in range(n)]


def write_grey_frames(out, stream, n: int) -> None:
    """Encode ``n`` synthetic B&W frames into ``stream`` of the open output ``out`` (pts 0, 1, ...)."""
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, stream.width, stream.height, color=False),
                                           format="rgb24").reformat(format=stream.pix_fmt)
        frame.pts, frame.time_base = i, 1 / Fraction(stream.codec_context.framerate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def besides_colour(warnings: list[str]) -> list[str]:
    """The warnings other than "in colour already" (colour test pictures get that one too)."""
    return [w for w in warnings if "in colour already" not in w]
