"""Folder jobs: colour every film and photo under a folder, resumably, one failure never stopping the rest.

``batch(in_dir, out_dir, config)`` finds inputs by extension (recursively), mirrors the tree in
``out_dir`` (``<stem>.color<ext>`` for films, ``<stem>.color.png`` for stills), and colours each
input ("reel") with :func:`filmcolor.pipeline.colorize_file`, loading the model once per process.

Manifest: ``out_dir/filmcolor-manifest.jsonl``, one JSON object per reel, keyed by the input's
path relative to ``in_dir``::

    {"input": "a/reel1.mp4", "output": "a/reel1.color.mp4", "kind": "video", "status": "ok",
     "fingerprint": {"size": ..., "mtime_ns": ..., "sha256_head_tail": ...},
     "settings": "<sha256 of the output-relevant RunConfig fields>", "model": "<sha256 of weights>",
     "frames": 240, "seconds": 3.2, "error": null, "finished": "2024-...Z"}

The whole file is rewritten after each reel (temp file in ``out_dir``, fsync, ``os.replace``), so a
reader or a killed run only ever sees a complete manifest, and it holds exactly one line per reel
(the latest state) instead of a log that grows with every re-run. A manifest is a few hundred lines
at most, so rewriting it costs microseconds against the seconds to minutes a reel takes; an
append-only log would need readers to tolerate a torn last line and to fold duplicates.

Resume: a reel is skipped when its manifest line says ``ok``, its output exists, and the input
fingerprint (size, mtime, SHA-256 of the first and last MiB), the settings hash and the model hash
all match; everything else is (re)done, overwriting any stale output (``why_redo`` says why; a
``dry_run`` only reports it). ``force=True`` redoes all.
Outputs are written by the pipeline to a hidden temp file in the target folder and renamed into
place, so a SIGKILL leaves at most a stale hidden temp file; the next run deletes those before it
starts. A lock file (``flock``, released by the kernel even on SIGKILL) keeps two batches from
writing into the same ``out_dir`` at once.

Isolation: an exception while colouring a reel (damaged file, decode error, out of memory) marks
that reel ``failed`` with a one-line error and the batch goes on; a worker process that dies is
reported the same way and the pool is rebuilt. ``BatchReport.exit_code`` is 1 when any reel
failed. One failure stops new reels from starting: a disk (or quota) with no room left
(``errors.out_of_room``), since every later reel would fail the same way after colouring most of its
frames; the reels in flight finish, the others stay as they were in the manifest (status ``todo``
in the report, ``BatchReport.stopped`` says why, exit code 3) and the same command goes on.
``KeyboardInterrupt`` cancels pending reels, lets the reels in progress clean up their temp files
(the pipeline does that on interrupt), saves the manifest and re-raises (the CLI exits 130).

Concurrency: ``jobs=1`` colours in this process. ``jobs=N`` on CPU runs N spawned worker
processes, each loading the model once (pool initializer) with the CPU threads split between them.
On a CUDA device one model serves the reels in turn (``jobs`` is ignored). ``ray_address``
("auto", ``"ray://host:10001"``, ``"host:6379"`` or ``"local"``) submits one Ray task per reel (one
GPU each where the cluster has GPUs, else one CPU); the driver alone writes the manifest. Input and
output paths must be visible to the Ray workers (shared storage). ``segments=N`` colours each film
in N parallel segments joined into one output (see :mod:`filmcolor.segments`). ``sequences=True``
makes a folder's numbered pictures (film scans) one reel, coloured as a film (not cut into
segments); its fingerprint is the folder's listing (names, sizes, mtimes). ``config.frames_as``
writes films and sequences as folders of numbered pictures (``<name>.color/``); photos stay photos.

No click, no rich: this module is called from the CLI, from Python and from Ray tasks.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import RunConfig
from .errors import EXIT_FAILED, EXIT_OK, EXIT_PROCESSING, FilmcolorError, out_of_room

MANIFEST_NAME = "filmcolor-manifest.jsonl"
LOCK_NAME = ".filmcolor-batch.lock"
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m2v", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".ogv", ".mxf", ".dv", ".3gp", ".vob", ".y4m", ".nut",
})
# RunConfig fields that do not change the output pixels: they do not invalidate finished reels.
# (``model`` is covered by the model file's own hash, so a name and a path to the same file match.)
_SETTINGS_EXCLUDED = frozenset({"model", "device", "batch_size", "overwrite", "threads"})
# fields added later: the value that leaves the output as it was before them
# (``bars``: "auto", so a batch resumed after the upgrade keeps the reels it had finished)
_NEUTRAL = {"saturation": 1.0, "sequence_fps": None, "frames_as": None, "scan_transfer": None, "bars": "auto"}
_HEAD_TAIL = 1 << 20


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Reel:
    """One input of a batch: ``src`` absolute, ``rel`` its POSIX path relative to ``in_dir``."""

    src: Path
    rel: str
    dst: Path
    kind: str  # "video" | "still" | "sequence" (a folder of numbered pictures: one film)


@dataclass
class ReelResult:
    """What happened to one reel in this run (``status``: ok | failed | skipped)."""

    rel: str
    src: Path
    dst: Path
    kind: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    picture: str | None = None  # where only the picture inside black bars was coloured (bars.Area)
    reason: str | None = None  # status "todo": why it would be coloured (a dry run), or why it was not started

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.rel, "src": str(self.src), "output": str(self.dst), "kind": self.kind,
                "status": self.status, "frames": self.frames, "seconds": round(self.seconds, 3),
                "error": self.error, "warnings": self.warnings, "picture": self.picture, "reason": self.reason}


@dataclass
class BatchReport:
    """The outcome of :func:`batch`: one result per input found, plus the files that were ignored."""

    in_dir: Path
    out_dir: Path
    manifest: Path
    results: list[ReelResult] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # relative paths that are neither film nor photo
    seconds: float = 0.0
    stopped: str | None = None  # why reels were left unstarted (the output's disk full), to resume later

    def _with(self, status: str) -> list[ReelResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[ReelResult]:
        return self._with("ok")

    @property
    def failed(self) -> list[ReelResult]:
        return self._with("failed")

    @property
    def skipped(self) -> list[ReelResult]:
        return self._with("skipped")

    @property
    def todo(self) -> list[ReelResult]:
        """Reels a dry run found still to colour."""
        return self._with("todo")

    @property
    def exit_code(self) -> int:
        """0 when no reel failed, 1 (``EXIT_FAILED``) otherwise, 3 (``EXIT_PROCESSING``) when the batch
        stopped early for want of room."""
        return EXIT_PROCESSING if self.stopped else EXIT_FAILED if self.failed else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {"in_dir": str(self.in_dir), "out_dir": str(self.out_dir), "manifest": str(self.manifest),
                "exit_code": self.exit_code, "seconds": round(self.seconds, 3), "stopped": self.stopped,
                "counts": {"ok": len(self.done), "failed": len(self.failed), "skipped": len(self.skipped),
                           "todo": len(self.todo), "ignored": len(self.ignored)},
                "reels": [r.to_dict() for r in self.results], "ignored": self.ignored}

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        _atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path


# --------------------------------------------------------------------------------------------
# Discovery, fingerprints, hashes


def output_name(src: Path, kind: str, codec: str = "h264", frames_as: str | None = None) -> str:
    """``reel.mp4`` -> ``reel.color.mp4``, a still -> ``photo.color.png``, a sequence folder
    ``reel1`` -> ``reel1.color.mkv`` (the pipeline's naming: a container that cannot hold ``codec``
    video becomes ``.mkv``); with ``frames_as``, a film or sequence -> the folder ``reel.color``."""
    from .outputs import default_for

    return default_for(src, codec=codec, frames_as=frames_as, still=kind == "still").name


def classify(path: Path) -> str | None:
    """``"video"``, ``"still"`` or ``None`` (not an input) by file extension."""
    from .media import is_still_path

    if is_still_path(path):
        return "still"
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    return None


def discover(in_dir: str | Path, out_dir: str | Path, codec: str = "h264",
             sequences: bool = False, frames_as: str | None = None) -> tuple[list[Reel], list[str]]:
    """Inputs under ``in_dir`` (recursive, sorted, hidden files and ``out_dir`` excluded; outputs
    named for ``codec`` video) and the relative paths of the other files found (ignored). Files
    that are our own outputs (``*.color.*``) are never inputs. With ``sequences``, a folder's
    numbered pictures (see ``sequences.image_sequence``) are one reel of kind ``"sequence"``, coloured
    as a film into ``<folder>.color.mkv``; its other files are taken one by one as usual. With
    ``frames_as`` films and sequences are written as folders of pictures (``output_name``)."""
    from .companions import subtitle_sidecars
    from .sequences import image_sequence, sound_files

    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    reels: list[Reel] = []
    ignored: list[str] = []
    for root, dirs, files in os.walk(in_dir):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (root_path / d).resolve() != out_dir)
        frames: set[str] = set()
        if sequences and (seq := image_sequence(root_path, gaps_ok=True)) is not None:
            frames = set(seq.files)  # a gap fails the reel when it is coloured, with the gap named
            frames |= {p.name for p in sound_files(root_path)}  # its sound, delivered beside the scans
            rel = root_path.relative_to(in_dir) if root_path != in_dir else Path(in_dir.name)
            dst = out_dir / rel.parent / output_name(root_path, "sequence", codec, frames_as)
            reels.append(Reel(src=root_path, rel=rel.as_posix(), dst=dst, kind="sequence"))
        for name in sorted(files):
            if name.startswith(".") or name in frames:
                continue
            src = root_path / name
            rel = src.relative_to(in_dir)
            kind = classify(src)
            if kind is None or ".color." in name or not src.is_file():
                ignored.append(rel.as_posix())
                continue
            dst = out_dir / rel.parent / output_name(src, kind, codec, frames_as)
            reels.append(Reel(src=src, rel=rel.as_posix(), dst=dst, kind=kind))
    # a film's subtitle sidecars (reel.srt, reel.fr.srt) go into its coloured copy: not ignored
    taken = {p.relative_to(in_dir).as_posix() for r in reels if r.kind == "video" for p in subtitle_sidecars(r.src)}
    return _distinct_outputs(reels), [rel for rel in ignored if rel not in taken]


def _distinct_outputs(reels: list[Reel]) -> list[Reel]:
    """Reels whose outputs would share a name (``scan.jpg`` and ``scan.tif`` both -> ``scan.color.png``;
    ``reel.mpg`` and ``reel.mkv`` both -> ``reel.color.mkv``) would overwrite each other. The one whose
    extension is the output's keeps the plain name; the others are named after their whole file
    name (``scan.jpg.color.png``), so every reel keeps its own coloured copy."""
    claimed: dict[Path, list[int]] = {}
    for i, reel in enumerate(reels):
        claimed.setdefault(reel.dst, []).append(i)
    taken = {reel.dst for reel in reels}
    for dst, idx in claimed.items():
        if len(idx) < 2:
            continue
        for i in idx:
            reel = reels[i]
            if reel.src.suffix.lower() == dst.suffix.lower():
                continue
            ext = "" if dst.suffix == ".color" else dst.suffix  # a folder of pictures has none
            new, n = dst.with_name(f"{reel.src.name}.color{ext}"), 1
            while new in taken:  # a file really named like that too
                n += 1
                new = dst.with_name(f"{reel.src.name}.color{n}{ext}")
            taken.add(new)
            reels[i] = dataclasses.replace(reel, dst=new)
    return reels


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Size, mtime (ns) and SHA-256 of the first and last MiB: cheap, and changes when the file does.
    A folder (an image sequence): total size, latest mtime and SHA-256 of its listing (each file's
    name, size and mtime), which changes when a frame is added, removed or rewritten."""
    path = Path(path)
    if path.is_dir():
        listing = sorted((e.name, st.st_size, st.st_mtime_ns) for e in path.iterdir()
                         if e.is_file() and (st := e.stat()))
        digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
        return {"size": sum(n for _, n, _ in listing), "mtime_ns": max((m for *_, m in listing), default=0),
                "sha256_head_tail": digest}
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_HEAD_TAIL))
        if st.st_size > _HEAD_TAIL:
            f.seek(max(_HEAD_TAIL, st.st_size - _HEAD_TAIL))
            h.update(f.read(_HEAD_TAIL))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256_head_tail": h.hexdigest()}


def settings_hash(config: RunConfig) -> str:
    """SHA-256 of the ``RunConfig`` fields that change the output (see ``_SETTINGS_EXCLUDED``). A field
    added later counts only away from its neutral value (``_NEUTRAL``), so the manifests of earlier
    versions still match and their reels are not redone."""
    settings = {k: v for k, v in dataclasses.asdict(config).items()
                if k not in _SETTINGS_EXCLUDED and not (k in _NEUTRAL and v == _NEUTRAL[k])}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def model_hash(config: RunConfig) -> str:
    """SHA-256 of the weights file ``config.model`` resolves to (raises ``ModelError`` if unknown)."""
    from .weights import resolve_model

    return resolve_model(config.model).sha256


# --------------------------------------------------------------------------------------------
# Manifest


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:  # make the rename itself durable (best effort: not every platform/filesystem allows it)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_manifest(path: str | Path) -> dict[str, dict[str, Any]]:
    """Manifest entries by input path; a missing file is empty, an unreadable line is ignored."""
    path = Path(path)
    entries: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return entries
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("input"), str):
            entries[entry["input"]] = entry
    return entries


def write_manifest(path: str | Path, entries: dict[str, dict[str, Any]]) -> None:
    """Rewrite the whole manifest atomically, one line per entry, sorted by input path."""
    lines = [json.dumps(entries[k], sort_keys=True) for k in sorted(entries)]
    _atomic_write_text(Path(path), "".join(line + "\n" for line in lines))


def why_redo(entry: dict[str, Any] | None, reel: Reel, fp: dict[str, Any], settings: str, model: str) -> str | None:
    """Why a reel is (re)coloured, in a few words; None when its manifest entry says it is done
    with this input, these settings and this model, and its output is there."""
    if entry is None:
        return "new"
    if entry.get("status") != "ok":
        return f"{entry.get('status') or 'unfinished'} before"
    if not reel.dst.exists():  # a file, or a picture folder
        return "output missing"
    for key, now, what in (("fingerprint", fp, "input"), ("settings", settings, "settings"), ("model", model, "model")):
        if entry.get(key) != now:
            return f"{what} changed"
    return None


def is_stale_temp(name: str, output_names: Iterable[str]) -> bool:
    """Is ``name`` a hidden temp entry that a run writing one of ``output_names`` leaves when killed?
    The pipeline writes ``.<stem>.filmcolor-<pid>@<space>-<hex>.part<ext>`` (a picture folder:
    ``.<name>.filmcolor-<pid>@<space>-<hex>.part/``, and ``.old/`` for the one it replaces), the segment
    joiner ``.<name>.segtmp<pid>/`` folders (of earlier versions). A segmented run's
    ``.<name>.segwork-<key>/`` is not stale: it holds the segments a resumed run reuses. (Long names
    are cut to ``outputs.TEMP_NAME_BYTES`` in the temp names.)"""
    from .outputs import temp_name

    if not name.startswith("."):
        return False
    for out in output_names:
        stem = temp_name(Path(out).stem)
        if name.startswith(f".{stem}.filmcolor-") and ".part" in name:
            return True
        if name.startswith(f".{temp_name(out)}.filmcolor-") and (name.endswith(".part") or name.endswith(".old")):
            return True
        if name.startswith(f".{out}.") and "tmp" in name:
            return True
    return False


def clean_stale_temps(reels: Iterable[Reel]) -> list[Path]:
    """Delete the hidden temp files/folders (``is_stale_temp``) a killed run left beside the
    outputs of ``reels``. Returns what was removed."""
    import shutil

    removed: list[Path] = []
    for folder, names in _group_by_folder(reels).items():
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if is_stale_temp(p.name, names):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def orphan_segments(out_dir: Path, reels: Iterable[Reel]) -> list[Path]:
    """The hidden ``.<name>.segwork-<key>`` folders under ``out_dir`` (a segmented run's coloured
    segments, kept for a resume) whose reel is no longer among ``reels``: its input was removed or
    renamed, so no run will resume them, and FFV1 segments of a feature take gigabytes."""
    from .outputs import temp_name

    wanted = {(r.dst.parent, temp_name(r.dst.name)) for r in reels}  # (a long name is cut in the folder's)
    found = []
    for p in out_dir.rglob(".*.segwork-*"):
        name = p.name[1:].rsplit(".segwork-", 1)[0]
        if p.is_dir() and not p.is_symlink() and (p.parent, name) not in wanted:
            found.append(p)
    return sorted(found)


def _group_by_folder(reels: Iterable[Reel]) -> dict[Path, list[str]]:
    groups: dict[Path, list[str]] = {}
    for r in reels:
        groups.setdefault(r.dst.parent, []).append(r.dst.name)
    return groups


class _Lock:
    """An exclusive ``flock`` on ``out_dir/.filmcolor-batch.lock`` (freed by the kernel on any exit)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "_Lock":
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise FilmcolorError(self.path.parent, "another filmcolor batch is writing to this folder") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


# --------------------------------------------------------------------------------------------
# Work done in a worker (this process, a pool process or a Ray task)

_COLORIZERS: dict[tuple, Any] = {}  # per-process cache: the model is loaded once per process


def build_colorizer(config: RunConfig) -> Any:
    """The process's ``Colorizer`` for ``config`` (built on first use, then reused)."""
    key = (config.model, config.device, config.precision, config.batch_size, config.render_size, config.saturation)
    if key not in _COLORIZERS:
        from .inference import Colorizer, resolve_device
        from .weights import load_generator

        device = resolve_device(config.device)
        model, _info = load_generator(config.model, device)
        _COLORIZERS.clear()  # one model per process
        _COLORIZERS[key] = Colorizer(model, device, config.precision, config.batch_size, config.render_size,
                                     saturation=config.saturation)
    return _COLORIZERS[key]


def _init_worker(config: RunConfig, threads: int) -> None:
    """Pool initializer: split the CPU threads and load the model once."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    build_colorizer(config)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FilmcolorError):
        return exc.cause
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"


def colorize_reel(src: str, dst: str, config: RunConfig) -> dict[str, Any]:
    """Colour one reel into ``dst`` (overwriting). Never raises for a bad input: returns a dict with
    ``status`` ok/failed, ``frames``, ``seconds``, ``error`` and ``warnings``. ``KeyboardInterrupt``
    propagates after the pipeline removed its temp file."""
    from .media import is_still_path
    from .pipeline import colorize_file

    warnings: list[str] = []
    t0 = time.perf_counter()
    try:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        if config.frames_as and is_still_path(src):  # photos stay photos in a --frames-as batch
            config = dataclasses.replace(config, frames_as=None)
        result = colorize_file(Path(src), Path(dst), dataclasses.replace(config, overwrite=True),
                               colorizer=build_colorizer(config), warn=warnings.append)
    except Exception as exc:  # noqa: BLE001 - isolation: every failure of one reel is reported, not raised
        return {"status": "failed", "frames": 0, "seconds": time.perf_counter() - t0, "error": _one_line(exc),
                "warnings": warnings, "no_room": out_of_room(exc)}
    return {"status": "ok", "frames": int(result.frames), "seconds": float(result.seconds), "error": None,
            "warnings": warnings, "picture": _picture(result)}


def _picture(result: Any) -> str | None:
    """A run's picture area inside black bars as text (``RunResult.area``), None when it coloured all."""
    return None if result.area is None else str(result.area)


def _ray_colorize_reel(src: str, dst: str, config: RunConfig) -> dict[str, Any]:
    return colorize_reel(src, dst, config)


# --------------------------------------------------------------------------------------------
# Runners: where work runs. All return concurrent.futures.Future objects.


class Runner:
    """Submits ``fn(*args)`` somewhere; ``slots`` is how many to keep in flight."""

    slots = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        raise NotImplementedError

    def cancel(self, futures: Iterable[cf.Future]) -> None:
        for f in futures:
            f.cancel()

    def close(self, wait: bool = True) -> None:
        pass


class InlineRunner(Runner):
    """Runs each call in this process when submitted (``jobs=1``; the GPU path)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


class PoolRunner(Runner):
    """``jobs`` spawned processes, each loading the model once with ``threads`` torch threads."""

    def __init__(self, config: RunConfig, jobs: int) -> None:
        self.config, self.slots = config, jobs
        total = config.threads or os.cpu_count() or 1
        self.threads = max(1, total // jobs)
        self._pool = self._make()

    def _make(self) -> cf.ProcessPoolExecutor:
        config = dataclasses.replace(self.config, threads=self.threads)
        return cf.ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_worker, initargs=(config, self.threads))

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        return self._pool.submit(fn, *args)

    def restart(self) -> None:
        """After a worker died (``BrokenProcessPool``): a fresh pool for the remaining work."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._make()

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FilmcolorError(None, "Ray is not installed: pip install filmcolor[ray]") from None
    return ray


class RayRunner(Runner):
    """One Ray task per call on an existing cluster (``address``), or a local instance (``"local"``).
    Uses an already initialised Ray as is. Tasks get one GPU each where the cluster has GPUs."""

    def __init__(self, address: str | None) -> None:
        ray = self.ray = import_ray()
        self.started = False
        if not ray.is_initialized():
            if address in (None, "local"):
                ray.init()
            else:
                ray.init(address=address)
            self.started = True
        gpus = ray.cluster_resources().get("GPU", 0)
        self.options = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": 1}
        self.slots = 1 << 30  # let Ray schedule: everything is submitted at once
        self._remote: dict[Callable, Any] = {}
        self._refs: dict[cf.Future, Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        if fn not in self._remote:
            # max_calls=0: workers are reused, so the model loads once per Ray worker process
            self._remote[fn] = self.ray.remote(max_calls=0)(fn)
        ref = self._remote[fn].options(**self.options).remote(*args)
        future = ref.future()
        self._refs[future] = ref
        return future

    def cancel(self, futures: Iterable[cf.Future]) -> None:
        refs = [self._refs[f] for f in futures if f in self._refs]
        for ref in refs:
            try:
                self.ray.cancel(ref)  # force=False: KeyboardInterrupt in the task, which cleans up
            except Exception:  # noqa: BLE001 - already finished
                pass
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=30)

    def close(self, wait: bool = True) -> None:
        self._refs.clear()
        if self.started:
            self.ray.shutdown()


def make_runner(config: RunConfig, jobs: int, ray_address: str | None, warn: Callable[[str], None]) -> Runner:
    if ray_address is not None:
        return RayRunner(ray_address)
    if jobs > 1:
        from .inference import resolve_device

        if str(resolve_device(config.device)).startswith("cuda"):
            warn(f"--jobs {jobs} ignored on a GPU: one model serves the reels in turn")
            return InlineRunner()
        return PoolRunner(config, jobs)
    return InlineRunner()


# --------------------------------------------------------------------------------------------
# The batch


def batch(in_dir: str | Path, out_dir: str | Path, config: RunConfig, *, jobs: int = 1, force: bool = False,
          ray_address: str | None = None, segments: int = 1, report: str | Path | None = None,
          progress: Callable[[ReelResult, int, int], None] | None = None,
          warn: Callable[[str], None] | None = None, sequences: bool = False, dry_run: bool = False) -> BatchReport:
    """Colour every film and photo under ``in_dir`` into ``out_dir`` (see the module docstring);
    with ``sequences``, a folder's numbered pictures are one film (see :func:`discover`).
    ``dry_run``: colour nothing, write and delete nothing; the report lists each reel as "skipped"
    (done before) or "todo" with the ``reason`` it would be coloured (``why_redo``).

    ``progress(result, done, total)`` is called after each reel (skipped ones included); ``warn``
    gets one-line notices. Writes ``report`` (JSON) when given. Raises ``FilmcolorError`` for a bad
    ``in_dir``/model before any reel is touched, ``KeyboardInterrupt`` after cleaning up.
    """
    t0 = time.perf_counter()
    in_dir, out_dir = Path(in_dir).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    warn = warn or (lambda message: None)
    if not in_dir.is_dir():
        raise FilmcolorError(in_dir, "not a folder")
    if jobs < 1 or segments < 1:
        raise ValueError("jobs and segments must be >= 1")
    if segments > 1 and config.frames_as:
        raise ValueError("segments join into one film file; a film written as pictures is not cut into segments")
    if not dry_run:
        out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_NAME
    rep = BatchReport(in_dir=in_dir, out_dir=out_dir, manifest=manifest_path)

    with nullcontext() if dry_run else _Lock(out_dir):
        reels, rep.ignored = discover(in_dir, out_dir, config.codec, sequences, config.frames_as)
        settings, model = settings_hash(config), model_hash(config)
        entries = read_manifest(manifest_path)
        for p in [] if dry_run else clean_stale_temps(reels):
            warn(f"{p}: removed a temp file left by an interrupted run")
        for p in orphan_segments(out_dir, reels):
            if dry_run:
                warn(f"{p}: coloured segments of a reel no longer in {in_dir}; a run removes them")
            else:
                shutil.rmtree(p, ignore_errors=True)
                warn(f"{p}: removed the coloured segments of a reel no longer in {in_dir}")

        total = len(reels)
        todo: deque[tuple[Reel, dict[str, Any]]] = deque()
        by_rel: dict[str, ReelResult] = {}
        for reel in reels:
            try:
                fp = fingerprint(reel.src)
            except OSError as exc:
                by_rel[reel.rel] = ReelResult(reel.rel, reel.src, reel.dst, reel.kind, "failed",
                                              error=f"cannot read: {exc.strerror or exc}")
                continue
            why = "--force" if force else why_redo(entries.get(reel.rel), reel, fp, settings, model)
            if why is None:
                e = entries[reel.rel]
                by_rel[reel.rel] = ReelResult(reel.rel, reel.src, reel.dst, reel.kind, "skipped",
                                              frames=int(e.get("frames") or 0), seconds=0.0, picture=e.get("picture"))
            elif dry_run:
                by_rel[reel.rel] = ReelResult(reel.rel, reel.src, reel.dst, reel.kind, "todo", reason=why)
            else:
                todo.append((reel, fp))
        done_count = 0
        for reel in reels:  # report the skipped ones first, in order
            if reel.rel in by_rel:
                done_count += 1
                if progress:
                    progress(by_rel[reel.rel], done_count, total)

        def record(reel: Reel, fp: dict[str, Any], outcome: dict[str, Any]) -> None:
            nonlocal done_count
            res = ReelResult(reel.rel, reel.src, reel.dst, reel.kind, outcome["status"],
                             frames=outcome.get("frames", 0), seconds=outcome.get("seconds", 0.0),
                             error=outcome.get("error"), warnings=list(outcome.get("warnings", [])),
                             picture=outcome.get("picture"))
            by_rel[reel.rel] = res
            entries[reel.rel] = {
                "input": reel.rel, "output": reel.dst.relative_to(out_dir).as_posix(), "kind": reel.kind,
                "status": res.status, "fingerprint": fp, "settings": settings, "model": model,
                "frames": res.frames, "seconds": round(res.seconds, 3), "error": res.error,
                "picture": res.picture, "segments": segments if reel.kind == "video" else 1,
                "finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            write_manifest(manifest_path, entries)
            done_count += 1
            if progress:
                progress(res, done_count, total)

        if todo:
            runner = make_runner(config, jobs, ray_address, warn)
            try:
                if segments > 1:
                    no_room = _run_segmented(todo, runner, config, segments, record, warn)
                else:
                    no_room = _run_reels(todo, runner, config, record)
            finally:
                runner.close()
            if no_room and todo:  # left as they were in the manifest: the same command resumes them
                why = "not started: no room left to write in the output folder"
                for reel, _fp in todo:
                    by_rel[reel.rel] = ReelResult(reel.rel, reel.src, reel.dst, reel.kind, "todo", reason=why)
                rep.stopped = (f"no room left to write in {out_dir}: {len(todo)} reel(s) not started; free some "
                               "room and run the same command to go on")

    rep.results = [by_rel[r.rel] for r in reels if r.rel in by_rel]
    rep.seconds = time.perf_counter() - t0
    if report is not None:
        rep.write_json(report)
    return rep


def _run_reels(todo: deque, runner: Runner, config: RunConfig,
               record: Callable[[Reel, dict[str, Any], dict[str, Any]], None]) -> bool:
    """Keep ``runner.slots`` reels in flight; record each as it finishes. A reel that failed for want
    of room stops new ones from starting (those in flight finish); returns whether that happened,
    with the unstarted reels left in ``todo``."""
    inflight: dict[cf.Future, tuple[Reel, dict[str, Any]]] = {}
    no_room = False
    try:
        while (todo and not no_room) or inflight:
            while todo and not no_room and len(inflight) < runner.slots:
                reel, fp = todo.popleft()
                inflight[runner.submit(colorize_reel, str(reel.src), str(reel.dst), config)] = (reel, fp)
            finished, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
            broken = False
            for future in finished:
                reel, fp = inflight.pop(future)
                try:
                    outcome = future.result()
                except cf.process.BrokenProcessPool:
                    broken = True
                    outcome = {"status": "failed", "error": "worker process died (crashed or killed)"}
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. a Ray task lost with its node
                    outcome = {"status": "failed", "error": _one_line(exc)}
                record(reel, fp, outcome)
                no_room = no_room or bool(outcome.get("no_room"))
            if broken and isinstance(runner, PoolRunner):
                for future, (reel, fp) in list(inflight.items()):  # lost with the pool: run them again
                    todo.appendleft((reel, fp))
                inflight.clear()
                runner.restart()
    except BaseException:
        # Ctrl-C (or anything else): the reels in progress clean up their temp files, nothing new starts
        runner.cancel(list(inflight))
        raise
    return no_room


def _run_segmented(todo: deque, runner: Runner, config: RunConfig, segments: int,
                   record: Callable[[Reel, dict[str, Any], dict[str, Any]], None],
                   warn: Callable[[str], None]) -> bool:
    """Films one at a time, each split into ``segments`` parts coloured in parallel on ``runner``. Stops
    after a reel that failed for want of room, as :func:`_run_reels`, and says whether it did."""
    from .segments import colorize_segmented

    while todo:
        reel, fp = todo.popleft()
        if reel.kind != "video":
            outcome = runner.submit(colorize_reel, str(reel.src), str(reel.dst), config).result()
            record(reel, fp, outcome)
            if outcome.get("no_room"):
                return True
            continue
        warnings: list[str] = []
        t0 = time.perf_counter()
        try:
            result = colorize_segmented(reel.src, reel.dst, dataclasses.replace(config, overwrite=True),
                                        segments=segments, runner=runner, warn=warnings.append)
            outcome = {"status": "ok", "frames": result.frames, "seconds": result.seconds, "warnings": warnings,
                       "picture": _picture(result)}
        except Exception as exc:  # noqa: BLE001 - isolation per film
            outcome = {"status": "failed", "seconds": time.perf_counter() - t0, "error": _one_line(exc),
                       "warnings": warnings, "no_room": out_of_room(exc)}
        record(reel, fp, outcome)
        if outcome.get("no_room"):
            return True
    return False
