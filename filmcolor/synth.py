"""Synthetic films for tests and benchmarks: moving coloured shapes with tone audio, written by PyAV.

``make_clip`` writes a small, fully known film: frame ``i`` shows a coloured square moving over a
gradient, every frame has a distinct timestamp, and each requested audio stream carries a tone.
Nothing here reads ``../shared/data``, so tests run on a clean clone.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np

# audio codec -> (sample format, layout, rate) that the codec accepts
_AUDIO = {
    "aac": ("fltp", "stereo", 48000),
    "libopus": ("flt", "stereo", 48000),
    "opus": ("flt", "stereo", 48000),
    "mp3": ("fltp", "stereo", 44100),
    "libmp3lame": ("fltp", "stereo", 44100),
    "pcm_s16le": ("s16", "stereo", 48000),
    "ac3": ("fltp", "stereo", 48000),
}


def synthetic_frame(i: int, width: int, height: int, color: bool = True) -> np.ndarray:
    """RGB uint8 ``(height, width, 3)``: a gradient background and a coloured square moving right."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([40 + 120 * x / max(width - 1, 1), 60 + 100 * y / max(height - 1, 1),
                   np.full_like(x, 140.0)], axis=-1)
    s = max(4, min(width, height) // 3)
    x0 = (3 * i) % max(width - s, 1)
    y0 = (height - s) // 2
    bg[y0:y0 + s, x0:x0 + s] = (220, 40, 40)
    rgb = np.clip(bg, 0, 255).astype(np.uint8)
    if not color:
        grey = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    return rgb


def vfr_pts(frames: int, fps: Fraction, time_base: Fraction) -> list[int]:
    """Irregular but increasing timestamps: frame gaps alternate 1x, 2x and 1.5x the nominal."""
    step = 1 / (fps * time_base)
    pts, t = [], Fraction(0)
    for i in range(frames):
        pts.append(int(t))
        t += step * (Fraction(1), Fraction(2), Fraction(3, 2))[i % 3]
    return pts


def make_clip(path: str | Path, *, frames: int = 24, width: int = 64, height: int = 48,
              fps: Fraction | int | str = 25, codec: str = "libx264", pix_fmt: str = "yuv420p",
              audio: Sequence[str] = ("aac",), vfr: bool = False, color: bool = True,
              full_range: bool = False, subtitles: bool = False, sar: Fraction | None = None,
              rotation: int = 0, color_tags: tuple[int, int, int] | None = None,
              keyint: int | None = None, bars: tuple[int, int] = (0, 0)) -> Path:
    """Write a synthetic film and return its path; the container follows the file extension.

    ``audio`` lists one codec per audio stream (``()`` for a silent film); audio lasts as long as
    the video. ``vfr`` gives irregular frame timestamps (time base 1/90000). ``color=False`` makes
    a B&W film (R = G = B). ``subtitles`` adds a text track (mov_text in MP4/MOV, SubRip elsewhere)
    with one cue per second. ``sar`` sets the sample aspect ratio, ``rotation`` a display matrix
    (counter-clockwise degrees), ``color_tags`` the (primaries, transfer, matrix) FFmpeg enums,
    ``keyint`` a keyframe every that many frames (x264; otherwise the encoder's default). ``bars``:
    ``(rows, columns)`` of black above and below / left and right of the picture (letterbox,
    pillarbox); the picture inside is the ``synthetic_frame`` of the size left.
    """
    path = Path(path)
    fps = Fraction(fps)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        if full_range:
            vs.codec_context.color_range = 2  # AVCOL_RANGE_JPEG
        if sar:
            vs.codec_context.sample_aspect_ratio = Fraction(sar)
        if color_tags:
            cc = vs.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace = color_tags
        if rotation:
            vs.set_display_rotation(rotation)
        if codec == "libx264":
            vs.options = {"crf": "16", "preset": "ultrafast"}
            if keyint:
                vs.options["x264-params"] = f"keyint={keyint}:min-keyint={keyint}:scenecut=0"
        if vfr:
            vs.codec_context.time_base = Fraction(1, 90000)
        tb = vs.codec_context.time_base or 1 / fps
        pts_list = vfr_pts(frames, fps, tb) if vfr else [int(i / (fps * tb)) for i in range(frames)]
        a_streams = []
        for name in audio:
            fmt, layout, rate = _AUDIO.get(name, ("fltp", "stereo", 48000))
            a = out.add_stream(name, rate=rate)
            a.layout = layout
            a.format = fmt
            a_streams.append((a, fmt, layout, rate))
        mov_text = path.suffix.lower() in (".mp4", ".mov", ".m4v")
        sub_stream = out.add_mux_stream("mov_text" if mov_text else "subrip", time_base=Fraction(1, 1000)) \
            if subtitles else None
        duration = float((pts_list[-1] * tb) + 1 / fps) if frames else 0.0
        by, bx = bars
        for i, pts in enumerate(pts_list):
            picture = np.zeros((height, width, 3), np.uint8)
            picture[by:height - by, bx:width - bx] = synthetic_frame(i, width - 2 * bx, height - 2 * by, color)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = pts, tb
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if sub_stream is not None:
            for k in range(int(duration) + 1):
                text = f"Cue {k + 1}".encode()
                packet = av.Packet(len(text).to_bytes(2, "big") + text if mov_text else text)
                packet.stream, packet.time_base = sub_stream, Fraction(1, 1000)
                packet.pts = packet.dts = 1000 * k
                packet.duration = 500
                out.mux(packet)
        for k, (a, fmt, layout, rate) in enumerate(a_streams):
            for frame in _tone(duration, rate, fmt, layout, 220.0 * (k + 1), a.codec_context.frame_size or 1024):
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode():
                out.mux(packet)
    return path


def _tone(seconds: float, rate: int, fmt: str, layout: str, hz: float, chunk: int) -> Iterator[av.AudioFrame]:
    total = int(seconds * rate)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        wave = 0.3 * np.sin(2 * np.pi * hz * t)
        chans = np.stack([wave, wave])
        if fmt == "s16":
            data = (chans.T.reshape(1, -1) * 32767).astype(np.int16)
        elif fmt == "flt":
            data = chans.T.reshape(1, -1).astype(np.float32)
        else:  # planar float
            data = chans.astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        yield frame


def make_photo(path: str | Path, width: int = 64, height: int = 48, grey: bool = True, bits: int = 8) -> Path:
    """Write a still (PNG/JPEG/TIFF by extension): grey or RGB, 8 or 16 bit."""
    import cv2

    path = Path(path)
    rgb = synthetic_frame(5, width, height, color=not grey)
    img = rgb[..., 0] if grey else rgb[..., ::-1]
    if bits == 16:
        img = img.astype(np.uint16) * 257
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write image")
    return path
