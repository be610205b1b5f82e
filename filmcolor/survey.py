"""``filmcolor info``: what filmcolor sees in a film or photo, and what ``run`` would make of it, before
anything is coloured - an archivist's check of one reel, or of two hundred before a long batch.

:func:`survey` returns a JSON-ready dict: the kind of input; its picture (size, codec, pixel format,
bit depth, range, frame rate, frames, duration, pixel aspect, rotation, interlace, timecode, and how
scans say they are coded); the picture inside black bars that ``run`` would colour alone; the film's
sound and subtitle tracks (codec, language, title, channels), the files that would go with it
(subtitle sidecars, the sound files of a scan folder), its chapters and attachments; and the output
``run`` would write (path, codec, pixel format) with the warnings ``run`` would give. It reads the
input and samples a few frames; it writes nothing. An input ``run`` would refuse raises the same
``InputError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av

from . import bars, companions, look, media, outputs, stills, transfer
from .config import RunConfig

_RANGES = {True: "full", False: "limited"}
_FIELDS = {media.FIELD_TT: "interlaced, top field first", media.FIELD_BB: "interlaced, bottom field first",
           media.FIELD_TB: "interlaced, top field first (coded bottom first)",
           media.FIELD_BT: "interlaced, bottom field first (coded top first)"}


def survey(src: str | Path, config: RunConfig | None = None, output: str | Path | None = None) -> dict[str, Any]:
    """What ``filmcolor run src`` with ``config`` (and ``-o output``) would read and write; see the
    module docstring. Raises ``InputError`` for an input ``run`` cannot read."""
    config = config or RunConfig()
    src = Path(src)
    outputs.check_input(src)
    warnings: list[str] = []
    info = media.probe_film(src, config.sequence_fps)
    if info is None:
        return _photo(src, config, output, warnings)
    stated = transfer.stated_transfer(src, info)
    transfer.warn_transfer(src, stated, config.scan_transfer, warnings.append)
    decoded = transfer.as_decoded(info, config)
    config = config.on_timeline(info.start_time)  # --start counts from the first frame; the stream's clock may not
    seen = look.look_at(src, decoded, config)
    look.warn_in_colour(src, seen, warnings.append)
    area = seen.area
    fps = info.fps
    picture = {
        "width": info.width, "height": info.height, "codec": info.codec_name, "pix_fmt": info.pix_fmt,
        "bit_depth": info.bit_depth,
        "range": "RGB" if info.pix_fmt.lstrip("a").startswith(("rgb", "bgr", "gbr")) else _RANGES[info.full_range],
        "fps": None if fps is None else str(fps), "fps_value": None if fps is None else round(float(fps), 3),
        "frames": outputs.expected_frames(info, config),
        "duration": None if info.duration is None else round(info.duration, 3),
        "pixel_aspect": None if info.sample_aspect_ratio is None else str(info.sample_aspect_ratio),
        "rotation": info.rotation, "scan": _FIELDS.get(info.field_order, "progressive"),
        "timecode": info.timecode, "coded_as": stated, "in_colour": seen.in_colour,
    }
    tracks, chapters, attachments = _tracks(src, config)
    added = [{"path": str(p), "kind": "sound" if src.is_dir() else "subtitles"}
             for p in companions.usable_companions(src, warnings.append)]
    if config.frames_as:
        dst = Path(output) if output is not None else outputs.default_frames_output(src)
        out = {"path": str(dst), "pictures": config.frames_as}
    else:
        dst = Path(output) if output is not None else outputs.default_output(src, still=False, codec=config.codec)
        out = {"path": str(dst), "codec": config.codec, "pix_fmt": media.writer_pix_fmt(config.codec, decoded)}
        if problem := media.film_output_problem(dst, config.codec):
            warnings.append(f"{dst}: {problem}")
        if lag := outputs.avi_lag(dst, config.codec):
            warnings.append(f"{dst}: {lag}")
    out["exists"] = _exists(dst, warnings)
    kind = "scans" if src.is_dir() else "film"
    return {"input": str(src), "kind": kind, "container": info.format_name, "picture": picture,
            "inside_bars": None if area.whole else _area(area), "tracks": tracks, "added": added,
            "chapters": chapters, "attachments": attachments, "output": out, "warnings": warnings}


def _exists(dst: Path, warnings: list[str]) -> bool:
    """Whether ``dst`` exists; a name too long for its file system is a warning (``run`` refuses it)."""
    if problem := outputs.name_problem(dst):
        warnings.append(f"{dst}: {problem}")
        return False
    return dst.exists()


def _photo(src: Path, config: RunConfig, output: str | Path | None, warnings: list[str]) -> dict[str, Any]:
    still = stills.read_still(src)
    warnings.extend(f"{src}: {note}" for note in still.notes)
    in_colour = look.warn_photo_in_colour(src, still, warnings.append)
    h, w = still.L.shape
    area = look.still_area(src, still.L, config.bars)
    dst = Path(output) if output is not None else outputs.default_output(src, still=True)
    if problem := stills.output_problem(dst):
        warnings.append(f"{dst}: {problem}")
    return {"input": str(src), "kind": "photo",
            "picture": {"width": w, "height": h, "bit_depth": still.bits, "grey_file": not still.colour_source,
                        "in_colour": bool(in_colour),
                        "orientation": still.orientation, "alpha": still.alpha is not None},
            "inside_bars": None if area is None or area.whole else _area(area), "tracks": [], "added": [],
            "chapters": 0, "attachments": 0, "output": {"path": str(dst), "exists": _exists(dst, warnings)},
            "warnings": warnings}


def _area(area: bars.Area) -> dict[str, Any]:
    return {"left": area.left, "top": area.top, "width": area.width, "height": area.height, "text": str(area)}


def _tracks(src: Path, config: RunConfig) -> tuple[list[dict[str, Any]], int, int]:
    """The film's sound and subtitle streams, its chapter and attachment counts."""
    tracks: list[dict[str, Any]] = []
    with media.open_input(src, config.sequence_fps) as c:
        for s in c.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            labels = s.metadata or {}
            language = labels.get("language")
            track: dict[str, Any] = {"kind": "sound" if s.type == "audio" else "subtitles",
                                     # the format's name (mp3), not its decoder's (mp3float)
                                     "codec": s.codec_context.codec.canonical_name if s.codec_context else None,
                                     "language": None if language in (None, "und") else language,
                                     "title": labels.get("title") or None,
                                     "default": bool(s.disposition & av.stream.Disposition.default)}
            if s.type == "audio":
                track["channels"] = s.codec_context.channels
                track["layout"] = s.codec_context.layout.name if s.codec_context.layout else None
                track["sample_rate"] = s.codec_context.sample_rate
            tracks.append(track)
        chapters = len(c.chapters()) if hasattr(c, "chapters") else 0
        covers = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        attachments = len(c.streams.attachments) + len(covers)  # fonts and the like, and cover pictures
    return tracks, chapters, attachments


def describe(report: dict[str, Any]) -> list[str]:
    """The survey as short lines for people (``filmcolor info`` without ``--json``)."""
    p = report["picture"]
    lines = [f"{report['input']}: {report['kind']}" + (f" ({report['container']})" if report.get("container") else "")]
    if report["kind"] == "photo":
        depth = f"{p['bit_depth']}-bit" + (" grey" if p["grey_file"] else " RGB")
        lines.append(f"  picture    {p['width']}x{p['height']}, {depth}" + (", with alpha" if p["alpha"] else ""))
    else:
        rate = "unknown rate" if p["fps"] is None else f"{p['fps_value']:g} fps"
        frames = "" if p["frames"] is None else f", {p['frames']} frames"
        length = "" if p["duration"] is None else f", {p['duration']:.2f} s"
        levels = "RGB" if p["range"] == "RGB" else f"{p['range']} range"
        lines.append(f"  picture    {p['width']}x{p['height']} {p['codec']} {p['pix_fmt']} ({p['bit_depth']}-bit, "
                     f"{levels}), {rate}{frames}{length}")
        extra = [p["scan"]]
        if p["pixel_aspect"] and p["pixel_aspect"] != "1":
            extra.append(f"pixel aspect {p['pixel_aspect']}")
        if p["rotation"]:
            extra.append(f"shown turned {p['rotation']} degrees")
        if p["timecode"]:
            extra.append(f"timecode {p['timecode']}")
        if p["coded_as"]:
            extra.append(f"coded as {p['coded_as']}")
        lines.append(f"             {', '.join(extra)}")
    bars_line = "only the picture is coloured: " + report["inside_bars"]["text"] if report["inside_bars"] \
        else "the whole frame is coloured (no black bars)"
    lines.append(f"  bars       {bars_line}")
    for t in report["tracks"]:
        label = ", ".join(x for x in (t.get("language"), f"\"{t['title']}\"" if t.get("title") else None) if x)
        sound = f" {t.get('layout') or t.get('channels')}" if t["kind"] == "sound" else ""
        lines.append(f"  {t['kind']:<10} {t['codec']}{sound}" + (f" ({label})" if label else "") + ", kept")
    for a in report["added"]:
        lines.append(f"  {'added':<10} {a['path']} ({a['kind']})")
    if report["chapters"] or report["attachments"]:
        lines.append(f"  also       {report['chapters']} chapter(s), {report['attachments']} attachment(s), kept")
    o = report["output"]
    what = o.get("pictures", "").upper() + " pictures" if o.get("pictures") else \
        " ".join(x for x in (o.get("codec", "").upper().replace("H264", "H.264"), o.get("pix_fmt")) if x)
    lines.append(f"  output     {o['path']}" + (f" ({what})" if what.strip() else "")
                 + (": exists (run needs --overwrite)" if o["exists"] else ""))
    lines.extend(f"  warning    {w}" for w in report["warnings"])
    return lines
