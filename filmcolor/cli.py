"""The ``filmcolor`` command line: a thin click layer over the library.

Each command builds a typed config (a TOML preset from ``configs/`` or the user's own file, then
``--set KEY=VALUE``, then the flags the user gave: :func:`build_run_config`) and calls one library
function. Shared helpers for commands added here later:

- :func:`cli_errors` turns a ``FilmcolorError`` into one line on stderr (``filmcolor: <path>: <cause>``)
  and its exit code, KeyboardInterrupt into exit 130, anything else into exit 1 with a one-line
  hint; ``--traceback`` (:data:`traceback_option`) prints the full chain as well.
- :func:`progress_bar` is a rich progress bar on stderr that matches the library's
  ``progress(done, total)`` callback; :func:`stderr_console` and :func:`warn_printer` print
  through the same console so warnings do not tear the bar.
- :func:`user_overrides` returns the options the user actually gave, to lay over a preset.

Only this module imports click and rich.
"""

from __future__ import annotations

import re
import signal
import sys
import traceback as tb_module
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.markup import escape
from rich.text import Text

from . import __version__
from .config import (BARS, CODECS, DEVICES, FRAME_FORMATS, MAX_SATURATION, PICTURE_AREA, SCAN_TRANSFERS,
                     SETTING_NOTES, SMOOTHERS, RunConfig)
from .errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, FilmcolorError, ModelError, OutputError,
                     Terminated, out_of_room)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}
_DEFAULTS = RunConfig()


# --- shared helpers ---------------------------------------------------------------------------------
def stderr_console() -> Console:
    """A rich console on stderr (created per command so test runners' captured streams are used)."""
    return Console(stderr=True, highlight=False)


def warn_printer(console: Console) -> Callable[[str], None]:
    """A ``warn(message)`` callback for the library that prints one yellow line on ``console``."""
    def warn(message: str) -> None:
        console.print(Text(f"filmcolor: warning: {message}", style="yellow"))
    return warn


def fail(message: str, code: int, show_traceback: bool = False) -> None:
    """Print ``filmcolor: <message>`` (and the current traceback when asked) and exit with ``code``."""
    if show_traceback:
        tb_module.print_exc(file=sys.stderr)
    click.echo(f"filmcolor: {message}", err=True)
    sys.exit(code)


@contextmanager
def cli_errors(path: Path | None = None, show_traceback: bool = False) -> Iterator[None]:
    """Run a command body: library errors become one line and their exit code (see module doc)."""
    try:
        yield
    except FilmcolorError as exc:
        fail(str(exc), exc.exit_code, show_traceback)
    except Terminated:
        fail("terminated; no output was left behind", EXIT_TERMINATED, show_traceback)
    except KeyboardInterrupt:
        fail("interrupted; no output was left behind", EXIT_INTERRUPTED, show_traceback)
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
        raise
    except Exception as exc:  # a bug or an unexpected library failure: still one line by default
        where = f"{path}: " if path is not None else ""
        hint = "" if show_traceback else " (run with --traceback for details)"
        fail(f"{where}unexpected error: {type(exc).__name__}: {exc}{hint}", EXIT_FAILED, show_traceback)


traceback_option = click.option("--traceback", "show_traceback", is_flag=True,
                                help="On an error, show the full Python traceback too.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")


def preset_options(command: Callable) -> Callable:
    """``--preset NAME|FILE.toml`` and ``--set KEY=VALUE``: where every setting ``run`` knows comes from
    (a preset, then ``--set``, then the flags given)."""
    command = click.option(
        "--set", "settings", multiple=True, metavar="KEY=VALUE",
        help="Any setting, also those without a flag (below), repeatable: --set render_size=256 --set crf=14.")(command)
    return click.option(
        "--preset", "preset_name", default="run", metavar="NAME|FILE",
        help="Settings preset: run, archival, or a .toml file of your own; --set and flags override it.")(command)


class SettingsCommand(click.Command):
    """A command whose less-used settings have no flag of their own (STYLE: about ten flags on
    ``run``): its help lists them with their defaults under "Settings without a flag", and a flag
    for one of them (``--crf 12``) is a usage error that names the ``--set`` to give instead."""

    def __init__(self, *args: Any, settings: Iterable[str] = tuple(SETTING_NOTES), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = tuple(settings)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            key = exc.option_name.removeprefix("--").replace("-", "_")
            if key in self.settings:
                raise click.UsageError(f"{exc.option_name} is a setting without a flag: give --set {key}=VALUE",
                                       ctx) from None
            raise

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Settings without a flag (--set KEY=VALUE, or in a --preset file)"):
            formatter.write_dl([(f"{key}={getattr(_DEFAULTS, key)}", SETTING_NOTES[key]) for key in self.settings])
        super().format_epilog(ctx, formatter)


fps_option = click.option(
    "--fps", "sequence_fps", default=_DEFAULTS.sequence_fps, metavar="RATE",
    help="Frame rate of an image sequence (a folder of numbered scans): 24, 25, 24000/1001.  "
         "[default: the rate its DPX header states, else 24]")
scan_transfer_option = click.option(
    "--scan-transfer", type=click.Choice(SCAN_TRANSFERS), default=None,
    help="Scans coded as log (Cineon/DPX printing density) or linear light (OpenEXR): shown at video levels "
         "before colouring, so the film comes out as a video-level (sRGB-coded) film; DPX pictures out are "
         "coded back into the scans' log or linear.")
frames_as_option = click.option(
    "--frames-as", type=click.Choice(FRAME_FORMATS), default=None,
    help="Write each film as numbered pictures (an image sequence, for grading or a DI conform) into a folder "
         "[default: <name>.color]: 10/16-bit where the source is deeper than 8; sound and subtitles go beside "
         "them into <stem>.mka.")
class BarsType(click.ParamType):
    """``--bars``: auto, off, or the picture's area ``WxH+X+Y``."""

    name = "auto|off|WxH+X+Y"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip().lower()
        if text in BARS or PICTURE_AREA.fullmatch(text):
            return text
        self.fail(f"{value!r} is not auto, off or a picture area WxH+X+Y (e.g. 1440x1080+240+0)", param, ctx)


bars_option = click.option(
    "--bars", type=BarsType(), default=_DEFAULTS.bars,
    help="Black bars around the picture (letterbox, pillarbox, a scan's black surround), found on frames "
         "sampled across the film: auto = only the picture inside them is coloured, at the render size, and "
         "the bars stay black (the same picture gets the same colours however it was framed); off = the "
         "whole frame is coloured; WxH+X+Y = only that area of the picture as shown, in pixels (a white "
         "mount, a scan's perforations: what auto does not find).")
saturation_option = click.option(
    "--saturation", type=click.FloatRange(0, MAX_SATURATION), default=_DEFAULTS.saturation,
    help="Colour strength: the model's a/b times this (0 = B&W, 1 = as predicted, 1.3 = more vivid).")


class FpsColumn(ProgressColumn):
    """Frames per second of a task, from rich's own speed estimate."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} fps", style="cyan")


@contextmanager
def progress_bar(console: Console, description: str, quiet: bool = False,
                 unit: str = "frames") -> Iterator[Callable[[int, int | None], None] | None]:
    """A transient progress bar (done/total frames, fps, elapsed, ETA) on ``console``; yields the
    library's ``progress(done, total)`` callback, or None when ``quiet``."""
    if quiet or not console.is_terminal:  # no bar in logs and pipes (rich would print blank lines)
        yield None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
               TextColumn(unit), FpsColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(escape(description), total=None)  # "Reel 1 [restored].mkv" is no markup

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def user_overrides(ctx: click.Context, names: Iterable[str]) -> dict[str, Any]:
    """The values of the options in ``names`` that the user gave on the command line (or through
    the environment), i.e. not click's defaults: they override the chosen preset."""
    given = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            given[name] = ctx.params[name]
    return given


class TimeType(click.ParamType):
    """Seconds as ``90``, ``90.5``, ``1:30`` or ``1:02:03.5``; with ``timecode``, SMPTE
    ``HH:MM:SS:FF`` (``;FF``: drop-frame) too, returned as the string, for the film's own timecode
    and frame rate to place (:func:`filmcolor.media.seconds_at`)."""

    name = "TIME"
    _re = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)$")
    _smpte = re.compile(r"^\d{1,2}:\d{2}:\d{2}[:;]\d{2,3}$")

    def __init__(self, positive: bool = False, timecode: bool = False) -> None:
        self.positive = positive  # a length: 0 would colour nothing
        self.timecode = timecode

    def convert(self, value, param, ctx):
        if isinstance(value, str) and self.timecode and self._smpte.match(value.strip()):
            return value.strip()
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            m = self._re.match(str(value).strip())
            if not m:
                self.fail(f"{value!r} is not a time (seconds, M:SS or H:MM:SS)", param, ctx)
            parts = [p for p in m.groups() if p is not None]
            seconds = 0.0
            for p in parts:
                seconds = seconds * 60 + float(p)
        if seconds < 0 or (self.positive and seconds == 0):
            self.fail("must be > 0" if self.positive else "must be >= 0", param, ctx)
        return seconds


TIME = TimeType()
LENGTH = TimeType(positive=True)
TIME_OR_TIMECODE = TimeType(timecode=True)
LENGTH_OR_TIMECODE = TimeType(positive=True, timecode=True)


# --- the group ---------------------------------------------------------------------------------------
@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="filmcolor")
def main() -> None:
    """Give colour back to black-and-white films, frame for frame, with their own sound."""
    _quiet_libraries()
    signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C (the default would leave the hidden temporary output behind)."""
    raise Terminated()


def _quiet_libraries() -> None:
    """Our one-line messages say what went wrong with a file; OpenCV's and tifffile's own logs
    (libtiff's complaints about a damaged TIFF, for one) would add lines of their own to them."""
    import logging

    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    logging.getLogger("tifffile").setLevel(logging.ERROR)


# --- run ---------------------------------------------------------------------------------------------
_RUN_FIELDS = ("model", "device", "smooth", "saturation", "deflicker", "codec", "start", "duration", "overwrite",
               "sequence_fps", "frames_as", "scan_transfer", "bars")


@main.command(cls=SettingsCommand, context_settings=CONTEXT_SETTINGS)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="INPUT...")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output file (with --frames-as, a folder); an existing folder (and with several INPUTs, "
                   "one must be given): the outputs go into it under their default names. [default: "
                   "<stem>.color<ext> beside INPUT; stills: .png; --preview: <stem>.preview.png]")
@click.option("--model", default=_DEFAULTS.model, metavar="NAME|PATH",
              help="Model: 'default', a genre model's name, or a .safetensors file.")
@click.option("--genre", default=None, metavar="NAME",
              help="Use the genre model NAME made by `filmcolor finetune` (same as --model NAME).")
@click.option("--device", type=click.Choice(DEVICES), default=_DEFAULTS.device, help="Where the network runs.")
@click.option("--smooth", type=click.Choice(SMOOTHERS), default=_DEFAULTS.smooth,
              help="Temporal chroma smoothing (reset at scene cuts).")
@saturation_option
@click.option("--deflicker/--no-deflicker", default=_DEFAULTS.deflicker,
              help="Even out frame-to-frame brightness pumping (changes the film's own luminance).")
@click.option("--codec", type=click.Choice(CODECS), default=_DEFAULTS.codec,
              help="Video codec: h264, or ffv1 / prores for archival masters.")
@click.option("--start", type=TIME_OR_TIMECODE, default=None,
              help="Colour from this time on (from the first frame): seconds, H:MM:SS, or the film's own "
                   "timecode HH:MM:SS:FF.")
@click.option("--duration", type=LENGTH_OR_TIMECODE, default=None,
              help="Colour only this long a stretch (seconds, H:MM:SS or HH:MM:SS:FF).")
@fps_option
@scan_transfer_option
@frames_as_option
@bars_option
@click.option("--add-track", "tracks", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help="A sound or subtitle file to add after the film's own tracks (a scanned optical track, an "
                   ".srt); repeatable. A folder of scans adds the sound files (WAV/BWF, AIFF, FLAC) inside it.")
@click.option("--segments", type=click.IntRange(1, 1000), default=1, metavar="N",
              help="Colour the film in N parts cut at keyframes, kept until joined: a run stopped part-way "
                   "resumes with the parts it finished (for long films).")
@click.option("--preview", type=click.IntRange(1, 100), default=None, metavar="N",
              help="Write a PNG of N frames (B&W | colour) instead of the film.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file (never the input).")
@preset_options
@quiet_option
@traceback_option
@click.pass_context
def run(ctx: click.Context, inputs: tuple[Path, ...], output: Path | None, genre: str | None,
        tracks: tuple[Path, ...], segments: int, preview: int | None, preset_name: str, settings: tuple[str, ...],
        quiet: bool, show_traceback: bool, **_flags: Any) -> None:
    """Colour the film or photo INPUT (or a folder of numbered scans: one film); several INPUTs are
    coloured one after another, each to its own output, and one that fails does not stop the rest.

    A film keeps its own luminance, size, frame timing and every audio and subtitle stream; a photo
    (JPEG/PNG/TIFF) becomes a PNG of the same size; an image sequence (DPX, TIFF, PNG... frames
    numbered without gaps) becomes <folder>.color.mkv at --fps.
    """
    console = stderr_console()
    warn = warn_printer(console)
    several = len(inputs) > 1
    if several and tracks:
        raise click.UsageError("--add-track adds a track to one film: give one INPUT")
    if several and output is not None and not output.is_dir():
        raise click.UsageError(f"with several inputs, -o names the folder their outputs go into; {output} is not one")
    timecodes = {k: v for k in ("start", "duration") if isinstance(v := ctx.params.get(k), str)}
    if not several:
        with cli_errors(inputs[0], show_traceback):
            result = _run_one(ctx, inputs[0], output, None, genre, tracks, segments, preview, preset_name, settings,
                              quiet, console, warn, None)
        if not quiet:
            click.echo(summary_line(result), err=True)
        return
    shared: dict[str, Any] = {}  # one network for them all, and the outputs written so far
    failed: list[tuple[Path, int]] = []
    coloured = 0
    with cli_errors(None, show_traceback):  # Ctrl-C stops them all; what was finished stays
        for k, src in enumerate(inputs):
            ctx.params.update(timecodes)  # an SMPTE --start is placed by each film's own timecode
            try:
                result = _run_one(ctx, src, None, output, genre, tracks, segments, preview, preset_name, settings,
                                  quiet, console, warn, shared, label=f"[{k + 1}/{len(inputs)}] ")
            except (ModelError, click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise  # a usage error or an unknown model is the same for every input: stop at the first
            except FilmcolorError as exc:  # named on one line, and the rest go on
                click.echo(f"filmcolor: {exc}", err=True)
                failed.append((src, exc.exit_code))
                if out_of_room(exc):  # unless the disk is full: the rest would fail alike, each part-way
                    click.echo(f"filmcolor: stopped: no room left to write; {len(inputs) - k - 1} input(s) not "
                               "started", err=True)
                    break
            except Exception as exc:  # noqa: BLE001 - a bug on one input: named, and the rest go on
                if show_traceback:
                    tb_module.print_exc(file=sys.stderr)
                click.echo(f"filmcolor: {src}: unexpected error: {type(exc).__name__}: {exc}", err=True)
                failed.append((src, EXIT_FAILED))
            else:
                coloured += 1
                if not quiet:
                    click.echo(summary_line(result), err=True)
    if not quiet:
        names = f": {', '.join(str(p) for p, _ in failed)}" if failed else ""
        click.echo(f"filmcolor: {coloured} of {len(inputs)} inputs coloured; {len(failed)} failed{names}", err=True)
    if failed:
        sys.exit(max(code for _, code in failed))


def _run_one(ctx: click.Context, src: Path, output: Path | None, folder: Path | None, genre: str | None,
             tracks: tuple[Path, ...], segments: int, preview: int | None, preset_name: str,
             settings: tuple[str, ...], quiet: bool, console: Any, warn: Callable[[str], None],
             shared: dict[str, Any] | None, label: str = "") -> Any:
    """`run` on one input, to ``output`` (a file; default: beside it) or into ``folder`` (several
    inputs: ``shared`` then keeps the Colorizer, built once, for the next input, and ``label``, e.g.
    "[2/5] ", leads the progress bar)."""
    from . import outputs, pipeline  # imported here so `filmcolor --help` stays fast
    from .inference import Colorizer
    from .preview import write_preview

    _place_timecodes(ctx, src)
    config = build_run_config(ctx, preset_name, settings, genre)
    if preview is not None and config.frames_as is not None:
        raise click.UsageError("give --preview or --frames-as, not both")
    if segments > 1 and config.frames_as:
        raise click.UsageError("--segments joins one film file: not with --frames-as")
    if shared is None and output is not None and output.is_dir() and config.frames_as is None:
        folder = output  # -o an existing folder: the output goes into it under its default name, as cp does
    if shared is not None or folder is not None:  # each under its default name, beside its input or in -o's
        named = outputs.default_for(src, codec=config.codec, frames_as=config.frames_as, preview=preview is not None)
        output = (folder or src.parent) / named.name
    if shared is not None:
        written = shared.setdefault("written", {})
        if (earlier := written.get(output.resolve())) is not None:  # a/reel.mp4 and b/reel.mp4 into one folder
            raise OutputError(output, f"is also the output of {earlier}; not written twice in one run")
        written[output.resolve()] = src
    if segments > 1 and preview is None:
        from .segments import colorize_segmented

        outputs.check_input(src)
        dst = output or outputs.default_for(src, codec=config.codec)
        outputs.check_output(src, dst, config.overwrite)
        with progress_bar(console, f"{label}{src.name}", quiet) as progress:
            return colorize_segmented(src, dst, config, segments=segments, warn=warn, progress=progress,
                                      tracks=tracks)
    colorizer = None  # one input: colorize_file builds it after checking the input and output
    if shared is not None:
        outputs.check_input(src)  # not a model load before a missing file's error
        if "colorizer" not in shared:
            shared["colorizer"] = Colorizer.from_config(config)
            shared["colorizer"].on_oom = lambda old, new: warn(f"out of memory at batch size {old}; retrying at {new}")
        colorizer = shared["colorizer"]
    if preview is not None:
        with progress_bar(console, f"{label}preview {src.name}", quiet) as progress:
            return write_preview(src, output, preview, config, colorizer=colorizer, progress=progress, warn=warn)
    with progress_bar(console, f"{label}{src.name}", quiet) as progress:
        return pipeline.colorize_file(src, output, config, colorizer=colorizer, progress=progress, warn=warn,
                                      tracks=tracks)


def _place_timecodes(ctx: click.Context, src: Path) -> None:
    """--start/--duration given as SMPTE timecodes -> seconds, by the film's own timecode and rate."""
    marks = {k: v for k in ("start", "duration") if isinstance(v := ctx.params.get(k), str)}
    if not marks:
        return
    from .media import probe, seconds_at

    info = probe(src, ctx.params.get("sequence_fps"))
    for key, timecode in marks.items():
        ctx.params[key] = seconds_at(info, timecode, length=key == "duration")
        if key == "duration" and ctx.params[key] <= 0:
            raise click.BadParameter("must be > 0", param_hint="'--duration'")


def build_run_config(ctx: click.Context, preset_name: str, settings: Iterable[str], genre: str | None = None,
                     flags: Iterable[str] = _RUN_FIELDS) -> RunConfig:
    """Preset ``preset_name``, then ``--set`` ``settings``, then the ``flags`` the user gave; ``--genre``
    sets the model. Bad values are usage errors (exit 2)."""
    from .config import parse_overrides, run_config_from_preset

    given = user_overrides(ctx, flags)
    if genre is not None:
        if "model" in given:
            raise click.UsageError("give --model or --genre, not both")
        given["model"] = genre
    if not given.get("overwrite"):
        given.pop("overwrite", None)
    try:
        return run_config_from_preset(preset_name, parse_overrides(settings), **given)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def summary_line(result) -> str:
    """One line: what was written, how many frames, how fast, and the picture inside black bars."""
    area = getattr(result, "area", None)
    inside = f"; only the picture coloured, {area}" if area is not None else ""
    if result.kind == "still":
        return f"filmcolor: wrote {result.dst} ({result.seconds:.1f} s){inside}"
    frames = f"{result.frames} frame{'' if result.frames == 1 else 's'}"
    if result.kind == "preview":
        return f"filmcolor: wrote {result.dst}: {frames}, B&W | colour ({result.seconds:.1f} s){inside}"
    where = f"{result.dst}/" if result.kind == "frames" else result.dst
    return f"filmcolor: wrote {where}: {frames} in {result.seconds:.1f} s ({result.fps:.1f} fps){inside}"


# --- eval --------------------------------------------------------------------------------------------
_EVAL_FIELDS = ("model", "device", "smooth", "saturation", "start", "duration", "bars")


@main.command("eval", cls=SettingsCommand, context_settings=CONTEXT_SETTINGS,
              settings=("render_size", "precision", "batch_size", "smooth_strength", "cut_threshold", "threads"))
@click.argument("references", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--model", default=_DEFAULTS.model, metavar="NAME|PATH", help="Model name or .safetensors path.")
@click.option("--genre", default=None, metavar="NAME", help="Use this genre's model (instead of --model).")
@click.option("--device", type=click.Choice(DEVICES), default=_DEFAULTS.device, help="Where the network runs.")
@click.option("--smooth", type=click.Choice(SMOOTHERS), default=_DEFAULTS.smooth, help="Temporal chroma smoothing.")
@saturation_option
@click.option("--start", type=TIME, default=None, help="Score from this time on in each clip.")
@click.option("--duration", type=LENGTH, default=None, help="Score only this long a stretch of each clip.")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="At most this many frames per clip.")
@bars_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (inf/nan as null).")
@preset_options
@quiet_option
@traceback_option
@click.pass_context
def eval_(ctx: click.Context, references: tuple[Path, ...], genre: str | None, max_frames: int | None,
          as_json: bool, preset_name: str, settings: tuple[str, ...], quiet: bool, show_traceback: bool,
          **_flags: Any) -> None:
    """Score the current settings on colour REFERENCE clips (or folders of numbered colour scans): each
    is made B&W, coloured, and compared with itself (PSNR, SSIM, CIEDE2000, colourfulness, CDC, warp
    error in RGB and in a/b alone; grey input and reference beside; the grey input's a/b warp error is
    0 by definition)."""
    from .evaluate import evaluate, format_table, to_json  # imported here so `--help` stays fast

    config = build_run_config(ctx, preset_name, settings, genre, _EVAL_FIELDS)
    console = stderr_console()
    with cli_errors(None, show_traceback):
        with progress_bar(console, "eval", quiet) as update:
            progress = None if update is None else (lambda path, done: update(done, max_frames))
            result = evaluate(list(references), config, max_frames=max_frames, progress=progress)
    click.echo(to_json(result) if as_json else format_table(result))
    for failure in result["failed"]:  # scored the others; named here, and the exit code says so
        click.echo(f"filmcolor: {failure['error']}", err=True)
    if result["failed"]:
        sys.exit(max(f["exit_code"] for f in result["failed"]))


# --- info --------------------------------------------------------------------------------------------
_INFO_FIELDS = ("codec", "start", "duration", "sequence_fps", "scan_transfer", "frames_as", "bars")


@main.command("info", context_settings=CONTEXT_SETTINGS)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--codec", type=click.Choice(CODECS), default=_DEFAULTS.codec, help="The codec `run` would use.")
@click.option("--start", type=TIME, default=None, help="Count frames from this time on (seconds, H:MM:SS).")
@click.option("--duration", type=LENGTH, default=None, help="Count frames of this long a stretch.")
@fps_option
@scan_transfer_option
@frames_as_option
@bars_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per input.")
@preset_options
@traceback_option
@click.pass_context
def info(ctx: click.Context, inputs: tuple[Path, ...], as_json: bool, preset_name: str, settings: tuple[str, ...],
         show_traceback: bool, **_flags: Any) -> None:
    """Show what filmcolor sees in each film, folder of scans or photo INPUT, and what `run` would
    write: the picture (size, rate, frames, interlace, timecode, log/linear coding), the picture inside
    black bars, the sound and subtitle tracks kept and the files added, the output and its warnings.
    Colours and writes nothing. An input that cannot be read is named with its cause (exit 1)."""
    import json

    from .survey import describe, survey  # imported here so `--help` stays fast

    config = build_run_config(ctx, preset_name, settings, flags=_INFO_FIELDS)
    reports, code = [], 0
    with cli_errors(None, show_traceback):  # a bug: one line; an unreadable input: named, and the rest go on
        for src in inputs:
            try:
                report = survey(src, config)
            except FilmcolorError as exc:
                report, code = {"input": str(src), "error": exc.cause}, code or exc.exit_code
                if not as_json:
                    click.echo(f"filmcolor: {exc}", err=True)
            reports.append(report)
            if not as_json and "error" not in report:
                click.echo("\n".join(describe(report)))
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    elif len(reports) > 1:
        click.echo(info_totals(reports))
    sys.exit(code)


def info_totals(reports: list[dict]) -> str:
    """One line over several ``info`` reports: what they are, and what to look at before a batch."""
    read = [r for r in reports if "error" not in r]
    names = {"film": ("film", "films"), "scans": ("scan folder", "scan folders"), "photo": ("photo", "photos")}
    counts = {k: sum(r["kind"] == k for r in read) for k in names}
    parts = [f"{n} {names[k][n != 1]}" for k, n in counts.items() if n]
    parts.append(f"{sum(bool(r['inside_bars']) for r in read)} with black bars")
    parts.append(f"{sum(bool(r['picture'].get('in_colour')) for r in read)} in colour already")
    parts.append(f"{sum(r['output']['exists'] for r in read)} with an output already")
    if len(read) < len(reports):
        parts.append(f"{len(reports) - len(read)} unreadable")
    return f"filmcolor info: {len(reports)} inputs: " + ", ".join(parts)


# --- batch -------------------------------------------------------------------------------------------
@main.command("batch", cls=SettingsCommand, context_settings=CONTEXT_SETTINGS)
@click.argument("in_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the coloured copies (IN_DIR's tree mirrored) and filmcolor-manifest.jsonl.")
@click.option("--model", default=_DEFAULTS.model, metavar="NAME|PATH",
              help="Model: 'default', a genre model's name, or a .safetensors file.")
@click.option("--genre", default=None, metavar="NAME", help="Use the genre model NAME (same as --model NAME).")
@click.option("--device", type=click.Choice(DEVICES), default=_DEFAULTS.device, help="Where the network runs.")
@click.option("--smooth", type=click.Choice(SMOOTHERS), default=_DEFAULTS.smooth,
              help="Temporal chroma smoothing (reset at scene cuts).")
@saturation_option
@click.option("--deflicker/--no-deflicker", default=_DEFAULTS.deflicker,
              help="Even out frame-to-frame brightness pumping (changes the film's own luminance).")
@click.option("--codec", type=click.Choice(CODECS), default=_DEFAULTS.codec,
              help="Video codec: h264, or ffv1 / prores for archival masters.")
@click.option("--jobs", type=click.IntRange(1, 256), default=1,
              help="Worker processes on CPU, each with its own model (a GPU serves the reels in turn).")
@click.option("--force", is_flag=True, help="Redo every reel, also those the manifest says are done.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
              help="One Ray task per reel on a running cluster (auto, HOST:PORT, ray://...; 'local' starts one).")
@click.option("--segments", type=click.IntRange(1, 256), default=1,
              help="Split each film at keyframes into N parts coloured in parallel, joined into one file.")
@click.option("--sequences", is_flag=True,
              help="A folder's numbered pictures (scans: reel1/0001.dpx ...) are one film, <folder>.color.mkv "
                   "at --fps, not separate photos.")
@fps_option
@scan_transfer_option
@frames_as_option
@bars_option
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the outcome of every reel to this JSON file.")
@click.option("--dry-run", is_flag=True,
              help="Colour nothing: list each reel as already done or still to colour, and why (new, input, "
                   "settings or model changed, output missing, failed before). Writes and deletes nothing.")
@preset_options
@quiet_option
@traceback_option
@click.pass_context
def batch_(ctx: click.Context, in_dir: Path, out_dir: Path, genre: str | None, jobs: int, force: bool,
           ray_address: str | None, segments: int, sequences: bool, report_path: Path | None, dry_run: bool,
           preset_name: str, settings: tuple[str, ...], quiet: bool, show_traceback: bool,
           **_flags: Any) -> None:
    """Colour every film and photo under IN_DIR into OUT_DIR, resumably.

    A re-run skips reels already done with the same input, settings and model (see the manifest);
    a broken reel is reported and the others go on (exit 1 when any failed).
    """
    from .batch import VIDEO_SUFFIXES, batch  # imported here so `--help` stays fast
    from .sequences import STILL_EXTENSIONS

    config = build_run_config(ctx, preset_name, settings, genre)
    if segments > 1 and config.frames_as:
        raise click.UsageError("give --segments or --frames-as, not both (segments join into one film file)")
    console = stderr_console()
    warn = warn_printer(console)
    with cli_errors(in_dir, show_traceback):
        with progress_bar(console, in_dir.name or str(in_dir), quiet, unit="reels") as update:
            progress = None if update is None else (lambda result, done, total: update(done, total))
            rep = batch(in_dir, out_dir, config, jobs=jobs, force=force, ray_address=ray_address,
                        segments=segments, report=report_path, progress=progress, warn=warn, sequences=sequences,
                        dry_run=dry_run)
    if not quiet:
        console.print(batch_table(rep, dry_run))
    for r in rep.results:  # what a plain run would have said of each reel (damage, colour already...)
        for message in r.warnings:
            warn(message)
    if not rep.results:  # a mistyped folder or the wrong one: say so rather than "0 coloured"
        click.echo(f"filmcolor: warning: {in_dir}: no films or photos found (looked for "
                   f"{', '.join(sorted(VIDEO_SUFFIXES | STILL_EXTENSIONS))})", err=True)
    for r in rep.failed:
        click.echo(f"filmcolor: {r.src}: {r.error}", err=True)
    if rep.stopped:
        click.echo(f"filmcolor: batch stopped: {rep.stopped}", err=True)
    if rep.exit_code:
        sys.exit(rep.exit_code)


def batch_table(rep, dry_run: bool = False) -> Any:
    """A rich table: one row per reel (status, frames, seconds, error; in a dry run, why a reel is still
    to colour) and a totals caption."""
    from rich.table import Table

    styles = {"ok": "green", "skipped": "dim", "failed": "bold red", "todo": "yellow"}
    # file names and FFmpeg's messages ("[h264 @ 0x...]", "Reel 1 [restored].mkv") as text, not markup
    table = Table(title=Text(f"filmcolor batch: {rep.in_dir} -> {rep.out_dir}"), title_justify="left")
    for name, justify in (("reel", "left"), ("status", "left"), ("frames", "right"), ("seconds", "right"),
                          ("why" if dry_run else "error", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in rep.results:
        frames = "" if r.status == "todo" else str(r.frames)
        table.add_row(Text(r.rel), Text(r.status, style=styles.get(r.status, "")), frames,
                      f"{r.seconds:.1f}" if r.status in ("ok", "failed") else "", Text(r.error or r.reason or ""))
    if dry_run:
        table.caption = Text(f"dry run: {len(rep.todo)} to colour, {len(rep.skipped)} already done, "
                             f"{len(rep.ignored)} other files ignored; nothing written")
    else:
        unstarted = f"{len(rep.todo)} not started, " if rep.todo else ""
        table.caption = Text(f"{len(rep.done)} coloured, {len(rep.skipped)} already done, {len(rep.failed)} "
                             f"failed, {unstarted}{len(rep.ignored)} other files ignored; {rep.seconds:.1f} s; "
                             f"manifest {rep.manifest}")
    return table


# --- train, finetune, models -------------------------------------------------------------------------
class _LossesColumn(ProgressColumn):
    """The latest losses of a training task."""

    def render(self, task) -> Text:
        return Text(task.fields.get("losses", ""), style="cyan")


def _is_rank0() -> bool:
    """False in the processes torchrun starts besides rank 0 (they neither draw nor summarise)."""
    import os

    return os.environ.get("RANK", "0") == "0"


@contextmanager
def training_bar(console: Console, description: str, total: int, quiet: bool = False
                 ) -> Iterator[Callable[[int, dict], None] | None]:
    """A progress bar of training steps with the latest losses; yields the library's
    ``on_step(step, losses)`` callback, or None when ``quiet``, on a pipe, or on a DDP rank other than 0."""
    if quiet or not console.is_terminal or not _is_rank0():
        yield None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
               _LossesColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(escape(description), total=total, losses="")

        def on_step(step: int, losses: dict) -> None:
            bar.update(task, completed=step, losses=" ".join(f"{k} {v:.4f}" for k, v in losses.items()))

        yield on_step


def _library_log(console: Console, quiet: bool) -> Callable[[str], None]:
    """The training loop's ``log(line)``: dim lines on stderr through the bar's console."""
    if quiet:
        return lambda line: None
    return lambda line: console.print(Text(line, style="dim"))


@main.command("train", context_settings=CONTEXT_SETTINGS)
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path, exists=True))
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path, exists=True), metavar="DIR|FILE",
              help="Colour photos and/or colour films (files or folders); repeatable, SOURCES add more.")
@click.option("--val", multiple=True, type=click.Path(path_type=Path, exists=True), metavar="DIR|FILE",
              help="Validation photos/films. [default: the preset's; with several films and none given, "
                   "whole films are held out]")
@click.option("--steps", type=click.IntRange(1), default=None, help="Total steps. [default: the preset's]")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Images per step (per process).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Run folder: checkpoint, model, metrics.csv, PNGs. [default: the preset's]")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="Where to train. [default: auto]")
@click.option("--preset", "preset_name", default="train_default", metavar="NAME",
              help="Training preset: train_default, finetune, ... from configs/, or a .toml file of your own; "
                   "flags override it.")
@click.option("--from", "from_model", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              metavar="MODEL", help="Start the generator from these weights (same architecture) instead of "
                                    "random ones; the step count, optimisers and EMA start fresh.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override any preset key (repeatable), e.g. --set lr=1e-4 --set lr_decay_steps=2000.")
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.pt.")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), default=None, metavar="M",
              help="Stop after M minutes of training and save as at the last step (e.g. a machine held for a while).")
@quiet_option
@traceback_option
def train_cmd(sources: tuple[Path, ...], data: tuple[Path, ...], val: tuple[Path, ...], steps: int | None,
              batch_size: int | None, out: Path | None, device: str | None, preset_name: str,
              from_model: Path | None, settings: tuple[str, ...], resume: bool, max_minutes: float | None,
              quiet: bool, show_traceback: bool) -> None:
    """Train a colouriser from colour photos and/or colour films (frames sampled across each film).

    Runs on several GPUs or machines under torchrun:
    `torchrun --nproc_per_node=N -m filmcolor train ...` (only rank 0 logs and saves).
    """
    from .config import parse_overrides
    from .train import train, train_config_from_preset  # imported here so `--help` stays fast

    given = [str(p) for p in data + sources]
    try:
        flags = dict(data=tuple(given) or None, val=tuple(map(str, val)) or None, steps=steps,
                     batch_size=batch_size, out=str(out) if out else None, device=device,
                     init_from=str(from_model) if from_model else None, max_minutes=max_minutes)
        overrides = {**parse_overrides(settings), **{k: v for k, v in flags.items() if v is not None}}
        cfg = train_config_from_preset(preset_name, **overrides)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    if not cfg.data:
        raise click.UsageError("no training data: give --data DIR_OR_FILE (or SOURCES)")
    console = stderr_console()
    with cli_errors(Path(cfg.out), show_traceback):
        with training_bar(console, f"train {cfg.name}", cfg.steps, quiet) as on_step:
            try:
                path = train(cfg, resume=resume, log=_library_log(console, quiet), on_step=on_step)
            except ValueError as exc:
                fail(str(exc), 2, show_traceback)
    if not quiet and _is_rank0():
        click.echo(f"filmcolor: wrote {path}", err=True)


_FINETUNE_OWN = {"data", "val", "name", "out", "init_from", "base_model", "ngf", "num_downs"}


@main.command("finetune", context_settings=CONTEXT_SETTINGS)
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--genre", required=True, metavar="NAME", help="Name of the genre model to make (e.g. western).")
@click.option("--steps", type=click.IntRange(1), default=None, help="Steps. [default: the finetune preset's]")
@click.option("--from", "from_model", default="default", metavar="MODEL", help="Model to start from (name or path).")
@click.option("--val", multiple=True, type=click.Path(path_type=Path, exists=True), metavar="FILE",
              help="Held-out films to validate on. [default: with several SOURCES, whole films are held out]")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Run folder for checkpoints. [default: runs/finetune-<genre>]")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="Where to train. [default: auto]")
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.pt.")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), default=None, metavar="M",
              help="Stop after M minutes of training and save the genre model as at the last step.")
@click.option("--preset", "preset_name", default="finetune", metavar="NAME|FILE",
              help="Training preset: finetune from configs/, or a .toml file of your own; flags override it.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override any preset key (repeatable), e.g. --set lr=1e-5 --set warmup_steps=100.")
@quiet_option
@traceback_option
def finetune_cmd(sources: tuple[Path, ...], genre: str, steps: int | None, from_model: str, val: tuple[Path, ...],
                 out: Path | None, device: str | None, resume: bool, max_minutes: float | None, preset_name: str,
                 settings: tuple[str, ...], quiet: bool, show_traceback: bool) -> None:
    """Teach a model the palette of a genre from colour films of that genre, or of one film from a few
    colour stills of it (SOURCES: films, photos or folders); the result is a user model that
    `filmcolor run --genre NAME` uses."""
    from .config import parse_overrides
    from .train import finetune, train_config_from_preset

    try:
        overrides = parse_overrides(settings)
        steps = steps or overrides.pop("steps", None)
        own = sorted(set(overrides) & _FINETUNE_OWN)
        if own:
            raise ValueError(f"--set {', '.join(own)}: finetune sets these itself (from SOURCES, --val, --out, "
                             "--genre and the --from model)")
        total = steps or train_config_from_preset(preset_name, **overrides).steps
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    console = stderr_console()
    with cli_errors(None, show_traceback):
        with training_bar(console, f"finetune {genre}", total, quiet) as on_step:
            try:
                path = finetune(genre, [str(s) for s in sources], steps, from_model, val=[str(v) for v in val],
                                out=str(out) if out else None, preset=preset_name, resume=resume,
                                log=_library_log(console, quiet), on_step=on_step,
                                **{**overrides, **({"device": device} if device else {}),
                                   **({"max_minutes": max_minutes} if max_minutes else {})})
            except ValueError as exc:
                fail(str(exc), 2, show_traceback)
    if not quiet and _is_rank0():
        click.echo(f"filmcolor: wrote {path}; use it with `filmcolor run --genre {genre} FILM`", err=True)


def _card_summary(card: dict) -> tuple[str, str, str]:
    """(data, steps, metrics) of a model card, short enough for one table row."""
    data = ", ".join(Path(str(d)).name for d in card.get("data", [])) or "-"
    steps = str(card.get("steps", "-")) + (" (time limit)" if card.get("stopped") else "")
    val, base = card.get("validation") or {}, card.get("base_validation") or {}
    parts = []
    if "l1" in val:
        parts.append(f"L1 {val['l1']:.4f}" + (f" (base {base['l1']:.4f})" if "l1" in base else ""))
    if "ciede2000" in val:
        parts.append(f"CIEDE2000 {val['ciede2000']:.2f}" + (f" (grey {val['grey_ciede2000']:.2f})"
                                                            if "grey_ciede2000" in val else ""))
    if "psnr" in val:
        parts.append(f"PSNR {val['psnr']:.2f}")
    return data, steps, "; ".join(parts) or "-"


@main.command("models", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print every model's full card as JSON.")
def models_cmd(as_json: bool) -> None:
    """List the packaged and user models with their cards (data, steps, validation metrics)."""
    import json

    from rich.table import Table

    from .weights import available_models, models_dir

    unreadable: dict = {}
    models = available_models(unreadable)
    for exc in unreadable.values():
        click.echo(f"filmcolor: warning: {exc}; not listed", err=True)
    if as_json:
        click.echo(json.dumps({n: {"source": m.source, "path": str(m.path), "arch": m.arch, "arch_args": m.arch_args,
                                   "card": m.card} for n, m in models.items()}, indent=1, default=str))
        return
    if not models:
        click.echo(f"filmcolor: no models found (user models live in {models_dir()})", err=True)
        return
    table = Table(title=Text(f"filmcolor models (user models: {models_dir()})"), title_justify="left")
    for col in ("name", "source", "arch", "data", "steps", "validation"):
        table.add_column(col, overflow="fold")
    for name, m in sorted(models.items()):
        args = ",".join(f"{k}={v}" for k, v in sorted(m.arch_args.items()))
        table.add_row(*(Text(cell) for cell in (name, m.source, f"{m.arch}({args})", *_card_summary(m.card))))
    Console(highlight=False).print(table)


if __name__ == "__main__":  # pragma: no cover
    main()
