"""Training data: colour photos and frames of colour films, as RGB uint8 crops.

Sources are image files, video files, or folders holding either (searched recursively); a folder of
numbered DPX, Cineon or OpenEXR scans is a film.
- Photos are loaded at a bounded size (short side ``max_side``, uint8).
- Films are sampled evenly across their length (PyAV decode, frames converted only when kept),
  skipping near-black frames, frames that are already B&W (:func:`is_greyscale`) and
  near-duplicates of the last kept frame (mean absolute RGB difference at 32x32 below a threshold).
  A film inside black bars (a letterboxed DVD, a pillarboxed transfer: ``bars.find_in_film``) gives
  its picture only, as ``run`` colours it, so no crop teaches the network black bars.
- :func:`split_by_film` holds out whole films for validation (frames of one film are correlated,
  so a split by frame would leak).
- :func:`load_sources` caches what it prepared as uint8 shards (``.npy``) in a folder keyed by the
  source list (path, size, mtime) and the settings, so a second run memory-maps them instantly.

A training step then only crops, rescales and flips (:func:`sample_batch`: ``(N, 3, crop, crop)``
uint8 RGB); colour conversion to Lab happens on the training device (``color.rgb_to_lab``), and
optional film-like damage (:func:`film_damage`) is applied to the normalised input L only.
:class:`BatchStream` prepares batches in a background thread and reports, with each batch, the
sampling RNG state after it, so a checkpoint can resume the exact same sequence.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import bars
from .errors import InputError
from .media import film_stream, frame_rate, open_input
from .sequences import SCAN_EXTENSIONS, STILL_EXTENSIONS, image_sequence

IMAGE_EXTENSIONS = tuple(sorted(STILL_EXTENSIONS))
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mxf", ".wmv", ".flv")
CACHE_VERSION = 2  # 2: film frames cut to the picture inside black bars
SHARD_BYTES = 256 << 20


# --- listing --------------------------------------------------------------------------------------
def _list(sources: Iterable[str | Path], extensions: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix.lower() in extensions and q.is_file())
        elif p.suffix.lower() in extensions:
            found.append(p)
    return found


def list_images(sources: Iterable[str | Path]) -> list[Path]:
    """Image files named directly or found (recursively, sorted) under the given folders."""
    return _list(sources, IMAGE_EXTENSIONS)


def list_films(sources: Iterable[str | Path]) -> list[Path]:
    """Video files named directly or found (recursively, sorted) under the given folders, and the
    folders of film scans among them (see :func:`scan_folders`)."""
    return sorted(_list(sources, VIDEO_EXTENSIONS) + scan_folders(sources))


def scan_folders(sources: Iterable[str | Path]) -> list[Path]:
    """Folders (given, or found under the given ones) holding numbered DPX, Cineon or OpenEXR scans:
    each is one film (a reel scanned frame by frame), sampled like a film file. Numbered PNG/TIFF/JPEG
    files stay photos: a folder of numbered camera photos is not a film."""
    found: list[Path] = []
    for src in sources:
        if not Path(src).is_dir():
            continue
        for root, dirs, _files in os.walk(src):
            dirs.sort()
            try:
                seq = image_sequence(root, gaps_ok=True)
            except OSError:
                continue
            if seq is not None and Path(seq.files[0]).suffix.lower() in SCAN_EXTENSIONS:
                found.append(Path(root))
    return found


def split_by_film(films: Sequence[Path], fraction: float = 0.2, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold out whole films for validation: ``(train, val)``. With fewer than two films nothing is
    held out; otherwise ``max(1, round(n * fraction))`` films (at most ``n - 1``), chosen by ``seed``."""
    films = sorted(films)
    if len(films) < 2 or fraction <= 0:
        return list(films), []
    k = min(len(films) - 1, max(1, round(len(films) * fraction)))
    order = np.random.default_rng(seed).permutation(len(films))
    val = {int(i) for i in order[:k]}
    return [f for i, f in enumerate(films) if i not in val], [f for i, f in enumerate(films) if i in val]


# --- photos -----------------------------------------------------------------------------------------
def _shrink(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = max_side / min(h, w)
    if s < 1:
        rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def load_rgb(path: Path, max_side: int = 256) -> np.ndarray:
    """An image as RGB uint8, downscaled (INTER_AREA) so its short side is at most ``max_side``."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"{path}: not a readable image")
    return _shrink(bgr[..., ::-1], max_side)


def is_greyscale(rgb: np.ndarray, tol: float = 3.0) -> bool:
    """True when an RGB image has (almost) no colour: mean |R-G| + |G-B| below ``tol`` code values."""
    x = rgb.astype(np.int16)
    return float(np.abs(x[..., 0] - x[..., 1]).mean() + np.abs(x[..., 1] - x[..., 2]).mean()) < tol


# --- films ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameFilter:
    """What :func:`sample_film` keeps: frames whose mean luma is at least ``black_level`` (0-255),
    that are not greyscale (``grey_tol``, see :func:`is_greyscale`) and that differ from the last
    kept frame by a mean absolute RGB difference of at least ``dup_level`` code values at 32x32."""

    black_level: float = 16.0
    grey_tol: float = 3.0
    dup_level: float = 2.0


@dataclass
class FilmSample:
    """Frames kept from one film (RGB uint8) and how many candidates each rule dropped."""

    path: Path
    frames: list[np.ndarray]
    candidates: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: {"black": 0, "grey": 0, "duplicate": 0})
    picture: str | None = None  # the picture inside black bars the frames were cut to (bars.Area)


def _frame_count(stream: Any, container: Any) -> int:
    if stream.frames:
        return int(stream.frames)
    rate = float(frame_rate(stream) or 25)
    if stream.duration and stream.time_base:
        return max(1, int(stream.duration * stream.time_base * rate))
    if container.duration:
        return max(1, int(container.duration / 1e6 * rate))
    return 0


def sample_film(path: str | Path, max_frames: int = 300, max_side: int = 256,
                rules: FrameFilter = FrameFilter()) -> FilmSample:
    """Up to ``max_frames`` frames sampled evenly across a colour film, as RGB uint8 with short side
    at most ``max_side``, of the picture inside black bars where the film has them; near-black,
    greyscale and near-duplicate candidates are skipped (and counted). Every frame is decoded
    (PyAV, threaded) but only the candidates are converted."""
    path = Path(path)
    out = FilmSample(path, [])
    area = bars.find_in_film(path)
    area = None if area is None or area.whole else area
    out.picture = None if area is None else str(area)
    with open_input(path) as container:  # a film file, or a folder of scans
        stream = film_stream(container)
        if stream is None:
            raise InputError(path, "no video stream")
        stream.thread_type = "AUTO"
        total = _frame_count(stream, container)
        stride = max(1.0, total / max_frames) if total else 1.0
        next_pick, last_small = 0.0, None
        for i, frame in enumerate(container.decode(stream)):
            if i < next_pick:
                continue
            next_pick += stride * max(1, math.floor((i - next_pick) / stride) + 1)
            out.candidates += 1
            h, w = frame.height, frame.width
            if area is not None and area.fits((h, w)):  # cut first, so the picture gets the short side
                rgb = _shrink(np.ascontiguousarray(frame.to_ndarray(format="rgb24")[area.slices()]), max_side)
            else:
                s = min(1.0, max_side / min(h, w))
                rgb = frame.to_ndarray(format="rgb24", width=max(1, round(w * s)), height=max(1, round(h * s)))
            small = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
            if float((small @ np.float32([0.299, 0.587, 0.114])).mean()) < rules.black_level:
                out.skipped["black"] += 1
            elif is_greyscale(rgb, rules.grey_tol):
                out.skipped["grey"] += 1
            elif last_small is not None and float(np.abs(small - last_small).mean()) < rules.dup_level:
                out.skipped["duplicate"] += 1
            else:
                out.frames.append(np.ascontiguousarray(rgb))
                last_small = small
                if len(out.frames) >= max_frames:
                    break
    return out


# --- prepared cache ------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$FILMCOLOR_HOME/cache``, else ``$XDG_CACHE_HOME/filmcolor`` (``~/.cache/filmcolor``)."""
    home = os.environ.get("FILMCOLOR_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "filmcolor"


def cache_key(files: Sequence[Path], settings: dict[str, Any]) -> str:
    """A digest of the files (resolved path, size, mtime; a folder of scans: each scan's) and the
    settings that shape the data."""
    h = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "settings": settings}, sort_keys=True).encode())
    for f in files:
        for member in sorted(f.iterdir()) if f.is_dir() else [f]:
            st = member.stat()
            h.update(f"{member.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _write_cache(folder: Path, images: Sequence[np.ndarray], origins: Sequence[str], info: dict[str, Any]) -> None:
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    index = np.zeros((len(images), 4), np.int64)  # shard, offset, h, w
    shard, chunk, offset = 0, [], 0
    for i, img in enumerate(images):
        if offset and offset + img.size > SHARD_BYTES:
            np.save(tmp / f"shard{shard:04d}.npy", np.concatenate(chunk))
            shard, chunk, offset = shard + 1, [], 0
        index[i] = (shard, offset, img.shape[0], img.shape[1])
        chunk.append(img.reshape(-1))
        offset += img.size
    if chunk:
        np.save(tmp / f"shard{shard:04d}.npy", np.concatenate(chunk))
    np.save(tmp / "index.npy", index)
    (tmp / "meta.json").write_text(json.dumps({**info, "origins": list(origins)}, indent=1))
    try:
        os.replace(tmp, folder)  # atomic publish; a concurrent writer that won is as good
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(folder: Path) -> tuple[list[np.ndarray], list[str], dict[str, Any]]:
    index = np.load(folder / "index.npy")
    meta = json.loads((folder / "meta.json").read_text())
    shards = {int(s): np.load(folder / f"shard{int(s):04d}.npy", mmap_mode="r") for s in np.unique(index[:, 0])}
    images = [shards[int(s)][o:o + h * w * 3].reshape(h, w, 3) for s, o, h, w in index]
    return images, meta.pop("origins"), meta


@dataclass
class Dataset:
    """Prepared RGB uint8 images (memory-mapped when cached) and the source each came from."""

    images: list[np.ndarray]
    origins: list[str]
    films: dict[str, dict[str, Any]] = field(default_factory=dict)  # per film: candidates, kept, skipped
    cached: bool = False
    seconds: float = 0.0
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why it was left out

    def __len__(self) -> int:
        return len(self.images)


def load_sources(sources: Iterable[str | Path], max_side: int = 256, film_frames: int = 300,
                 rules: FrameFilter = FrameFilter(), cache: str | Path | None = None) -> Dataset:
    """Photos and film frames from ``sources`` (files or folders), prepared once.

    With ``cache`` (a folder; ``None`` = no cache) the result is stored as uint8 shards under
    ``cache/<key>/`` and memory-mapped on the next call with the same files and settings."""
    t0 = time.perf_counter()
    sources = list(sources)
    photos, films = list_images(sources), list_films(sources)
    files = photos + films
    settings = {"max_side": max_side, "film_frames": film_frames, "rules": rules.__dict__}
    folder = Path(cache) / cache_key(files, settings) if cache and files else None
    if folder is not None and (folder / "index.npy").exists():
        images, origins, meta = _read_cache(folder)
        return Dataset(images, origins, meta.get("films", {}), True, time.perf_counter() - t0,
                       meta.get("unreadable", {}))
    images, origins = [], []
    unreadable: dict[str, str] = {}  # one damaged photo or film must not cost the whole run
    for p in photos:
        try:
            images.append(load_rgb(p, max_side))
            origins.append(str(p))
        except OSError:
            unreadable[str(p)] = "not a readable image"
    stats: dict[str, dict[str, Any]] = {}
    for f in films:
        try:
            s = sample_film(f, film_frames, max_side, rules)
        except (InputError, OSError, av.error.FFmpegError) as e:
            unreadable[str(f)] = getattr(e, "cause", None) or str(e)
            continue
        images += s.frames
        origins += [str(f)] * len(s.frames)
        stats[str(f)] = {"candidates": s.candidates, "kept": len(s.frames), "skipped": s.skipped,
                         "picture": s.picture}
    if folder is not None and images:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _write_cache(folder, images, origins, {"sources": [str(s) for s in sources], "settings": settings,
                                               "films": stats, "unreadable": unreadable})
    return Dataset(images, origins, stats, False, time.perf_counter() - t0, unreadable)


# --- batches ----------------------------------------------------------------------------------------
def sample_batch(images: Sequence[np.ndarray], batch_size: int, crop: int, rng: np.random.Generator,
                 scale_range: tuple[float, float] = (0.75, 1.0), flip: bool = True,
                 pool: ThreadPoolExecutor | None = None, parts: int = 1) -> torch.Tensor:
    """Random crops: pick an image, a scale ``s`` in ``scale_range`` (a window of ``crop / s`` px
    resized to ``crop``, so objects appear as at a render size ``s`` times the stored one), a random
    position and a horizontal flip. Returns ``(batch_size, 3, crop, crop)`` uint8 RGB.

    The random draws are made here, in order, so the batch depends only on ``rng``; with ``pool``
    the crops are then cut and resized in ``parts`` slices on its threads (OpenCV releases the GIL):
    the same batch."""
    draws = []
    for _ in range(batch_size):
        idx = int(rng.integers(len(images)))
        h, w = images[idx].shape[:2]
        win = min(h, w, max(8, int(round(crop / rng.uniform(*scale_range)))))
        y = int(rng.integers(h - win + 1))
        x = int(rng.integers(w - win + 1))
        draws.append((idx, win, y, x, bool(flip and rng.random() < 0.5)))
    out = np.empty((batch_size, crop, crop, 3), np.uint8)

    def cut(rows: range) -> None:
        for i in rows:
            idx, win, y, x, mirror = draws[i]
            patch = images[idx][y:y + win, x:x + win]
            if win != crop:
                shrink = cv2.INTER_AREA if win > crop else cv2.INTER_LINEAR
                patch = cv2.resize(patch, (crop, crop), interpolation=shrink)
            out[i] = patch[:, ::-1] if mirror else patch

    if pool is not None and parts > 1 and batch_size > 1:
        step = -(-batch_size // parts)
        list(pool.map(cut, [range(i, min(i + step, batch_size)) for i in range(0, batch_size, step)]))
    else:
        cut(range(batch_size))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@dataclass
class Batch:
    """One training batch: uint8 RGB ``(N, 3, crop, crop)``, a seed for its damage (``None`` = none),
    the sampling RNG state after it (JSON-able) and the seconds spent preparing it."""

    rgb: torch.Tensor
    damage_seed: int | None
    rng_state: dict[str, Any]
    seconds: float


class BatchStream:
    """Batches from :func:`sample_batch`, prepared ``prefetch`` ahead in a background thread
    (``prefetch=0``: in the caller's thread), each cut by ``threads`` threads. The sequence depends
    only on the RNG's state, so restoring ``Batch.rng_state`` of the last consumed batch continues it
    exactly."""

    def __init__(self, images: Sequence[np.ndarray], batch_size: int, crop: int, rng: np.random.Generator,
                 scale_range: tuple[float, float] = (0.75, 1.0), damage: float = 0.0, prefetch: int = 2,
                 pin_memory: bool = False, threads: int = 1) -> None:
        self._args = (images, batch_size, crop, rng, scale_range, damage, pin_memory)
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        #: threads that cut one batch's crops (``sample_batch``'s pool); 1 = the making thread alone
        self._threads = max(1, threads)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="filmcolor-crops") if threads > 1 else None
        if prefetch > 0:
            self._queue = queue.Queue(maxsize=prefetch)
            self._thread = threading.Thread(target=self._fill, daemon=True, name="filmcolor-batches")
            self._thread.start()

    def _make(self) -> Batch:
        images, batch_size, crop, rng, scale_range, damage, pin = self._args
        t0 = time.perf_counter()
        rgb = sample_batch(images, batch_size, crop, rng, scale_range, pool=self._pool, parts=self._threads)
        seed = int(rng.integers(2**31)) if damage > 0 else None
        if pin:
            rgb = rgb.pin_memory()
        return Batch(rgb, seed, rng.bit_generator.state, time.perf_counter() - t0)

    def _fill(self) -> None:
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                item: Batch | BaseException = self._make()
            except BaseException as exc:  # handed to the consumer, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> Batch:
        if self._queue is None:
            return self._make()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        if self._queue is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=True)


# --- film-like damage ----------------------------------------------------------------------------------
def film_damage(L: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """Old-film damage on normalised L ``(N, 1, H, W)`` in [-1, 1]; each image is damaged with
    probability ``p``: brightness/contrast flicker, a slight blur, grain and a few vertical
    scratches (each component itself random). Deterministic given ``seed``; returns a new tensor
    clamped to [-1, 1]. The targets (ab) are never damaged: the model learns to ignore it."""
    if p <= 0:
        return L
    n, _, h, w = L.shape
    g = torch.Generator(device="cpu").manual_seed(seed)
    dev = L.device
    u = torch.rand(n, 8, generator=g)
    hit = (u[:, 0] < p).float()

    def per_image(x: torch.Tensor) -> torch.Tensor:
        return (x * hit).to(dev).view(n, 1, 1, 1)

    out = L
    # flicker: gain 0.85..1.15 and offset -0.08..0.08 around mid-grey
    gain = 1 + per_image((u[:, 1] - 0.5) * 0.3)
    offset = per_image((u[:, 2] - 0.5) * 0.16)
    out = out * gain + offset
    # blur: a 3x3 binomial kernel blended in with weight 0..1 (half the damaged images)
    k = torch.tensor([1.0, 2.0, 1.0], device=dev)
    k2 = (k[:, None] * k[None, :] / 16).view(1, 1, 3, 3).to(out.dtype)
    blurred = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), k2)
    mix = per_image(u[:, 3] * (u[:, 4] < 0.5).float())
    out = out + mix * (blurred - out)
    # grain: gaussian, sigma 0..0.08
    noise = torch.randn(n, 1, h, w, generator=g).to(dev, out.dtype)
    out = out + per_image(u[:, 5] * 0.08) * noise
    # scratches: up to 3 thin vertical lines, bright or dark, in a third of the damaged images
    cols = torch.zeros(n, 1, 1, w)
    count = (u[:, 6] * 4).long() * (u[:, 7] < 0.33).long() * hit.long()
    for i in range(n):
        for _ in range(int(count[i])):
            x = int(torch.randint(w, (1,), generator=g))
            cols[i, 0, 0, x] = 0.6 if float(torch.rand(1, generator=g)) < 0.5 else -0.6
    out = out + cols.to(dev, out.dtype)
    return out.clamp(-1, 1)
