"""Typed, frozen configuration, read once at the edge (CLI flags over ``--set`` over a TOML preset).

``RunConfig`` describes how a film or photo is coloured; ``load_preset(name)`` returns a preset's
tables as a dict (a packaged ``configs/<name>.toml``, or the user's own ``.toml`` file), and
``run_config_from_preset`` lays ``--set`` settings and flags over its ``[run]`` table. Validation happens
in ``__post_init__`` so a bad value fails before any file is touched.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SMOOTHERS = ("off", "ema", "flow")
CODECS = ("h264", "ffv1", "prores")
FRAME_FORMATS = ("dpx", "tiff", "png")  # run --frames-as: a film as numbered pictures
SCAN_TRANSFERS = ("log", "linear")  # run --scan-transfer: how scans are coded (color.scan_to_video)
BARS = ("auto", "off")  # run --bars: colour only the picture inside black bars (bars.py), or the whole frame,
PICTURE_AREA = re.compile(r"(\d+)x(\d+)\+(\d+)\+(\d+)")  # or only the picture at WxH+X+Y (bars.from_geometry)
MAX_SATURATION = 3.0  # the a/b gain `--saturation` allows (1 = the model's own colours)

#: What the settings that have no flag on ``run`` do (``--set KEY=VALUE`` or a preset file sets them);
#: ``filmcolor run --help`` lists them with their defaults.
SETTING_NOTES = {
    "render_size": "short side (px) at which the network sees each frame, 32-2048; only chroma is upsampled",
    "precision": "network arithmetic: auto (bf16 on GPUs and on CPUs with native bf16, else fp32), fp32, "
                 "bf16, fp16",
    "batch_size": "frames per network call (halved by itself on a GPU out-of-memory)",
    "smooth_strength": "how strongly chroma is held over time: 0 = none, towards 1 = stronger",
    "cut_threshold": "scene-cut sensitivity (L histogram distance; lower = more cuts)",
    "crf": "H.264 quality, 0-51 (lower = better and larger)",
    "preset": "x264's speed: ultrafast ... veryslow (slower = smaller at the same quality)",
    "threads": "CPU threads of the network (0 = filmcolor chooses)",
}


@dataclass(frozen=True)
class RunConfig:
    """How to colour one input. Defaults are the packaged ``configs/run.toml`` preset's."""

    model: str = "default"            # name (packaged/genre) or path to a .safetensors file
    device: str = "auto"              # auto | cpu | cuda
    precision: str = "auto"           # auto: bf16/fp16 on CUDA; bf16 on CPUs with native bf16, else fp32
    render_size: int = 192            # short side (px) at which the network runs; chroma is upsampled
    batch_size: int = 8               # frames per network call (halved on CUDA out-of-memory)
    smooth: str = "flow"              # temporal chroma smoothing: off | ema | flow
    smooth_strength: float = 0.8      # 0 = none, towards 1 = stronger
    saturation: float = 1.0           # a/b gain on the model's colours: 0 = B&W, > 1 = more vivid
    cut_threshold: float = 0.35       # scene-cut detector sensitivity on L (histogram distance)
    deflicker: bool = False           # luminance deflicker (changes the film's own luminance)
    codec: str = "h264"               # h264 | ffv1 | prores (archival masters)
    crf: int = 18                     # h264 quality
    preset: str = "veryfast"          # x264 preset
    start: float | None = None        # seconds from the first frame: colour a stretch starting here
    duration: float | None = None     # seconds
    overwrite: bool = False
    threads: int = 0                  # torch CPU threads (0 = let filmcolor choose)
    sequence_fps: str | None = None   # frame rate of an image sequence ("24", "24000/1001"); None: its DPX
                                      # header's rate, else 24
    frames_as: str | None = None      # dpx | tiff | png: write a film as numbered pictures into a folder
    scan_transfer: str | None = None  # log | linear: scans coded so, shown at video levels before colouring
    bars: str = "auto"                # auto: black bars found across the film stay black, the picture inside
                                      # is coloured at render size; off: the whole frame is coloured;
                                      # "WxH+X+Y": only that area of the picture as shown (a white mount)

    def __post_init__(self) -> None:
        for name, value, allowed in (("device", self.device, DEVICES), ("precision", self.precision, PRECISIONS),
                                     ("smooth", self.smooth, SMOOTHERS), ("codec", self.codec, CODECS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if not 32 <= self.render_size <= 2048:
            raise ValueError(f"render_size must be in 32..2048, got {self.render_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.smooth_strength <= 1.0:
            raise ValueError(f"smooth_strength must be in [0, 1], got {self.smooth_strength}")
        if not 0.0 <= self.saturation <= MAX_SATURATION:
            raise ValueError(f"saturation must be in [0, {MAX_SATURATION:g}], got {self.saturation}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {self.crf}")
        if self.bars not in BARS and not PICTURE_AREA.fullmatch(str(self.bars)):
            raise ValueError(f"bars must be auto, off or the picture's area WxH+X+Y (e.g. 1440x1080+240+0), "
                             f"got {self.bars!r}")
        if self.scan_transfer is not None and self.scan_transfer not in SCAN_TRANSFERS:
            raise ValueError(f"scan_transfer must be one of {', '.join(SCAN_TRANSFERS)}, got {self.scan_transfer!r}")
        if self.frames_as is not None and self.frames_as not in FRAME_FORMATS:
            raise ValueError(f"frames_as must be one of {', '.join(FRAME_FORMATS)}, got {self.frames_as!r}")
        for name in ("start", "duration"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        try:
            if self.sequence_fps is not None and Fraction(str(self.sequence_fps)) <= 0:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"sequence_fps must be a positive number or ratio (24, 24000/1001), "
                             f"got {self.sequence_fps!r}") from None

    def on_timeline(self, first_frame: float | None) -> "RunConfig":
        """This config with ``start`` moved from the film's first frame, where a user counts seconds from
        (as players show them and ``ffmpeg -ss`` takes them), onto the stream's own timeline, on which
        decoding, the sound's cut, chapters and picture numbers work: that clock starts at
        ``first_frame`` (``VideoInfo.start_time``), anywhere in MPEG program and transport streams
        (0.5 s on a DVD, an hour into a broadcast capture). A ``duration`` alone counts from the first frame."""
        if not first_frame or first_frame < 0 or (self.start is None and self.duration is None):
            return self  # (a clock starting before zero, an MP4 edit list's, is off by a frame at most)
        return replace(self, start=first_frame + (self.start or 0.0))

    def with_overrides(self, **overrides: Any) -> "RunConfig":
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_preset(name: str) -> dict[str, Any]:
    """The table of a preset: the user's own TOML file when ``name`` is a path to one (it ends in
    ``.toml`` or holds a path separator: ``my.toml``, ``~/presets/restore``), else the packaged
    ``configs/<name>.toml`` (``filmcolor.configs``). Raises ``ValueError`` naming the file or the
    known names."""
    if name.lower().endswith(".toml") or "/" in name or "\\" in name:
        path = Path(name).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"preset file {name}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ValueError(f"preset file {name}: not a text file") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"preset file {name}: not valid TOML ({exc})") from None
    try:
        text = resources.files("filmcolor.configs").joinpath(f"{name}.toml").read_text()
    except FileNotFoundError:
        known = sorted(p.name[:-5] for p in resources.files("filmcolor.configs").iterdir() if p.name.endswith(".toml"))
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(known)}, or a .toml file of your own") from None
    return tomllib.loads(text)


def preset_table(name: str, kind: str) -> dict[str, Any]:
    """The ``[kind]`` table (``run``, ``train``) of preset ``name``; a file of settings alone, without
    a table header, is that table. Raises ``ValueError`` for a preset made for something else (a
    training preset given to ``run``), which would otherwise be ignored without a word."""
    preset = load_preset(name)
    if kind in preset:
        return dict(preset[kind])
    if any(isinstance(value, dict) for value in preset.values()):
        raise ValueError(f"preset {name!r} has no [{kind}] table")
    return dict(preset)


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``["lr=2e-5", "scale_range=[0.5, 1.0]", "name=x"]`` -> ``{"lr": 2e-05, ...}``: each value is
    read as a TOML value (numbers, booleans, arrays, quoted strings), else taken as a bare string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value.strip()
    return out


def run_config_from_preset(name: str = "run", settings: dict[str, Any] | None = None, **overrides: Any) -> RunConfig:
    """``RunConfig`` from a preset's ``[run]`` table, then ``settings`` (``--set KEY=VALUE``: any
    field, flag or not), then ``overrides`` (the flags given; ``None`` = keep). Numbers are taken
    where a field holds text (``sequence_fps = 24``) and integers where it holds a float; an unknown
    key or a value of the wrong kind is a ``ValueError`` naming the key."""
    table = preset_table(name, "run")
    _check_keys(table, f"preset {name!r} has unknown keys")
    settings = dict(settings or {})
    _check_keys(settings, "unknown setting")
    merged = {key: _as_field_type(key, value) for key, value in {**table, **settings}.items()}
    return RunConfig(**merged).with_overrides(**overrides)


_RUN_FIELDS = {f.name: str(f.type) for f in fields(RunConfig)}


def _check_keys(table: dict[str, Any], what: str) -> None:
    unknown = sorted(set(table) - set(_RUN_FIELDS))
    if unknown:
        raise ValueError(f"{what}: {', '.join(unknown)}; known: {', '.join(_RUN_FIELDS)}")


def _as_field_type(key: str, value: Any) -> Any:
    """``value`` (read from TOML) as ``RunConfig.<key>``'s type holds it."""
    kind = _RUN_FIELDS[key].split("|")[0].strip()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str" and number:
        return str(value)
    if kind == "float" and number:
        return float(value)
    if kind == "int" and number and float(value).is_integer():
        return int(value)
    wanted = {"str": str, "float": float, "int": int, "bool": bool}.get(kind)
    if wanted is not None and not isinstance(value, wanted) and not (value is None and "None" in _RUN_FIELDS[key]):
        names = {"str": "text", "float": "a number", "int": "a whole number", "bool": "true or false"}
        raise ValueError(f"{key} must be {names[kind]}, got {value!r}")
    return value
