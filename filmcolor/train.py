"""Training and fine-tuning: a plain loop (nanoGPT style) for the pix2pix colouriser.

Recipe (Isola et al. 2017, plus the seeds' findings):
- the generator maps normalised L (L/50-1) to ab/110 through a tanh;
- ``warmup_steps`` of L1 only, then cGAN + ``lambda_l1`` * L1 with a 70x70 PatchGAN that sees
  (L, ab) pairs; soft real/fake labels (real in [0.85, 1], fake in [0, 0.15]) that are flipped
  with probability ``label_flip``;
- Adam(2e-4, beta1 0.5) for both nets, random crop/rescale/flip of the inputs, optional film-like
  damage on the input L only (``damage`` = probability per image);
- an exponential moving average of the generator's weights; the EMA generator is what is saved
  for inference.

Files in ``out``: ``checkpoint.pt`` (both nets, EMA, optimisers, step, wall time, history, config
and the RNG states of data sampling and torch, so ``resume=True`` continues with the same step
count and the same next batch and loss), written every ``checkpoint_every`` steps and on Ctrl-C;
``<name>.safetensors`` (the EMA generator with its card; ``<name>-l1.safetensors``: the same at the
end of the L1-only warm-up); ``metrics.csv`` (validation each
``val_every`` steps: L1, PSNR, SSIM, CIEDE2000, colourfulness, grey baseline beside them);
``grid_<step>.png`` (input | output | target) and ``loss.png``.

Several processes: run under ``torchrun --nproc_per_node=N -m filmcolor train ...``. Each rank
samples its own batches (its RNG is seeded with its rank), DistributedDataParallel all-reduces the
gradients (gloo on CPU, nccl on CUDA) and only rank 0 logs, validates and saves.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import platform
import re
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import color
from .color import denormalize_ab, lab_to_rgb, normalize_ab, normalize_L, rgb_to_lab
from .data import (BatchStream, default_cache_dir, film_damage, list_films, list_images, load_rgb,  # noqa: F401
                   load_sources, sample_batch, split_by_film)
from .model import PatchDiscriminator, UNetGenerator, init_weights
from .weights import save_generator

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved in checkpoints and in the model card."""

    data: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    out: str = "runs/default"
    steps: int = 10000
    warmup_steps: int = 2000
    batch_size: int = 16
    crop: int = 128
    scale_range: tuple[float, float] = (0.75, 1.0)
    ngf: int = 24
    num_downs: int = 6
    ndf: int = 64
    lr: float = 2e-4
    lr_decay_steps: int = 0        # pix2pix's schedule: lr falls linearly to 0 over the last N steps
    beta1: float = 0.5
    lambda_l1: float = 100.0
    label_flip: float = 0.05
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    val_every: int = 1000
    val_images: int = 64
    max_side: int = 256
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    init_from: str | None = None   # a generator to start from (fine-tuning)
    name: str = "default"
    # data
    film_frames: int = 300         # frames sampled evenly across each film
    val_split: float = 0.2         # share of films held out (by film) when no val is given
    val_max_side: int = 1024       # validation images are scored at up to this short side
    damage: float = 0.0            # probability of film-like damage on an input L
    cache: str = "auto"            # prepared-data folder: auto = data.default_cache_dir(), "" = none
    prefetch: int = 2              # batches prepared ahead in a background thread (0 = inline)
    data_threads: int = 0          # threads cutting each batch's crops: 0 = 1 on CPU (the network needs
                                   # the cores), min(8, cores // 2) on CUDA (where batches are the limit)
    # run
    precision: str = "auto"        # auto: bf16 autocast on CUDA, fp32 on CPU
    grid_images: int = 4           # rows of the validation PNG grid
    base_model: str = ""           # what init_from is, for the card (fine-tuning)
    keep_best: bool = False        # save the EMA of the validation with the lowest L1 (the base model's
                                   # score at step 0 included), not the last one: early stopping
    max_minutes: float = 0.0       # stop (checkpoint and save as at the last step) once the run's wall
                                   # time passes this; 0 = no limit. For a lent machine held for a while

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("steps", "batch_size", "crop", "checkpoint_every", "val_every", "max_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.lr_decay_steps <= self.steps:
            raise ValueError(f"lr_decay_steps must be in [0, steps={self.steps}], got {self.lr_decay_steps}")
        if not 0.0 <= self.damage <= 1.0:
            raise ValueError(f"damage must be in [0, 1], got {self.damage}")
        if self.max_minutes < 0:
            raise ValueError(f"max_minutes must be >= 0, got {self.max_minutes}")
        if self.crop % 2**self.num_downs:
            raise ValueError(f"crop {self.crop} must be a multiple of {2**self.num_downs} (num_downs={self.num_downs})")


# --- small pieces ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    created: bool = False  # this call initialised the process group (and tears it down)


def _setup_distributed(device_name: str) -> Distributed:
    """Join the process group torchrun describes (env://); a single process when WORLD_SIZE <= 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return Distributed(dist.get_rank(), dist.get_world_size(), local, False)
    cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://", rank=rank, world_size=world)
    return Distributed(rank, world, local, True)


def _device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def lab_batch(rgb_u8: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB ``(N, 3, H, W)`` -> normalised (L ``(N, 1, H, W)``, ab ``(N, 2, H, W)``) on ``device``."""
    lab = rgb_to_lab(rgb_u8.to(device, non_blocking=True).float() / 255.0)
    return normalize_L(lab[:, :1]), normalize_ab(lab[:, 1:])


def soft_labels(like: torch.Tensor, real: bool, flip: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Noisy targets for the discriminator: real ~ U(0.85, 1), fake ~ U(0, 0.15), each patch
    swapped with probability ``flip``."""
    u = torch.rand(like.shape, device=like.device, generator=gen)
    target = 0.85 + 0.15 * u if real else 0.15 * u
    if flip > 0:
        swap = torch.rand(like.shape, device=like.device, generator=gen) < flip
        target = torch.where(swap, 1.0 - target, target)
    return target


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


@torch.no_grad()
def recalibrate_bn(gen: nn.Module, images: Sequence[np.ndarray], batches: int, crop: int = 128,
                   scale_range: tuple[float, float] = (0.7, 1.0), batch_size: int = 16, seed: int = 0,
                   device: torch.device | str = "cpu") -> nn.Module:
    """Recompute ``gen``'s BatchNorm running statistics for its current weights on ``batches``
    random training crops (an equal-weight average, ``torch.optim.swa_utils.update_bn``), in place.

    The EMA generator carries the running statistics of the *raw* weights (``ema_update`` copies
    them), and an interpolated one a blend of two such sets; neither set was measured on the
    weights it is used with. The same seed gives the same statistics; the mode is kept."""
    rng = np.random.default_rng(seed)
    device = torch.device(device)
    loader = (lab_batch(torch.as_tensor(sample_batch(images, batch_size, crop, rng, scale_range)), device)[0]
              for _ in range(batches))
    torch.optim.swa_utils.update_bn(loader, gen, device)
    return gen


@torch.no_grad()
def colourise_rgb(gen: nn.Module, rgb: np.ndarray, device: torch.device, multiple: int
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Colour an RGB uint8 image from its own L: (output RGB, grey RGB) float32 ``(H, W, 3)`` in
    [0, 1], and the L1 of the predicted normalised ab against the image's."""
    h, w = rgb.shape[:2]
    hp, wp = (h + multiple - 1) // multiple * multiple, (w + multiple - 1) // multiple * multiple
    t = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None]  # a copy: cached images are read-only maps
    L, ab = lab_batch(t, device)
    Lp = F.pad(L, (0, wp - w, 0, hp - h), mode="reflect") if (hp, wp) != (h, w) else L
    pred = gen(Lp)[..., :h, :w].float()
    l1 = float((pred - ab).abs().mean())
    lab_pred = torch.cat([(L + 1) * 50, denormalize_ab(pred)], 1)
    lab_grey = torch.cat([(L + 1) * 50, torch.zeros_like(pred)], 1)
    out = lab_to_rgb(lab_pred)[0].permute(1, 2, 0).cpu().numpy()
    grey = lab_to_rgb(lab_grey)[0].permute(1, 2, 0).cpu().numpy()
    return out, grey, l1


@torch.no_grad()
def colourise_rgb_as_run(colorizer: Any, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """As ``colourise_rgb``, but the way `filmcolor run` colours a photo: the network sees L at the
    colorizer's render size and its a/b are upsampled onto the full-size L (the steps of
    ``pipeline.colorize_rgb``, kept apart here because the L1 needs the a/b). The L1 compares those
    upsampled a/b with the image's."""
    from . import compose

    ref = rgb.astype(np.float32) / 255.0
    lab = color.rgb_to_lab_np(ref)
    L = np.ascontiguousarray(lab[..., 0])
    rh, rw = colorizer.render_shape(*L.shape)
    ab = colorizer.predict_ab(compose.resize_L(L, rh, rw)[None])[0]
    ab_full = compose.resize_ab(ab, *L.shape)
    l1 = float(np.abs(color.normalize_ab(ab_full) - color.normalize_ab(lab[..., 1:])).mean())
    return compose.compose_rgb(L, ab), compose.grey_rgb(L), l1


@torch.no_grad()
def validate(gen: nn.Module, images: list[np.ndarray], device: torch.device, multiple: int,
             render_size: int | None = None) -> dict[str, float]:
    """Colour each validation image from its L and compare with the original (and with grey).
    The network sees each image at its own size, or with ``render_size`` as `filmcolor run` does
    (``colourise_rgb_as_run``)."""
    from . import metrics  # scikit-image based; imported lazily

    was_training = gen.training
    gen.eval()
    colorizer = None
    if render_size:
        from .inference import Colorizer

        colorizer = Colorizer(gen, device, "fp32", batch_size=1, render_size=render_size, fold_bn=False)
    rows: list[dict[str, float]] = []
    for rgb in images:
        out, grey, l1 = (colourise_rgb_as_run(colorizer, rgb) if colorizer is not None
                         else colourise_rgb(gen, rgb, device, multiple))
        ref = rgb.astype(np.float32) / 255.0
        m = dict(metrics.image_metrics(out, ref))
        m.update({f"grey_{k}": v for k, v in metrics.image_metrics(grey, ref).items()})
        m["l1"] = l1
        m["ref_colourfulness"] = metrics.colourfulness(ref)
        rows.append(m)
    gen.train(was_training)
    return {k: float(np.mean([r[k] for r in rows if math.isfinite(r[k])] or [math.nan])) for k in rows[0]}


def write_grid(gen: nn.Module, images: Sequence[np.ndarray], device: torch.device, multiple: int, path: Path,
               height: int = 128) -> Path:
    """PNG of rows input (grey) | output | target for ``images``, each scaled to ``height`` px."""
    was_training = gen.training
    gen.eval()
    rows = []
    for rgb in images:
        out, grey, _ = colourise_rgb(gen, rgb, device, multiple)
        w = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
        tiles = [cv2.resize((x * 255 + 0.5).astype(np.uint8), (w, height), interpolation=cv2.INTER_AREA)
                 for x in (grey, out, rgb.astype(np.float32) / 255)]
        rows.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles]))
    gen.train(was_training)
    width = max(r.shape[1] for r in rows)
    grid = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    cv2.imwrite(str(path), np.ascontiguousarray(grid[..., ::-1]))
    return path


def plot_history(history: Sequence[dict[str, float]], path: Path, keys: Sequence[str] = ("l1", "d", "g_gan", "val_l1"),
                 size: tuple[int, int] = (720, 170)) -> Path | None:
    """A PNG with one panel per loss in ``history`` (x = step), drawn with OpenCV."""
    w, h = size
    panels = []
    for key in keys:
        pts = [(r["step"], r[key]) for r in history if key in r and math.isfinite(r[key])]
        if not pts:
            continue
        img = np.full((h, w, 3), 255, np.uint8)
        x0, x1, y0, y1 = 60, w - 10, 20, h - 20
        steps, vals = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
        lo, hi = float(vals.min()), float(vals.max())
        hi = hi if hi > lo else lo + 1e-6
        smax = max(float(steps.max()), 1.0)
        xs = x0 + (x1 - x0) * steps / smax
        ys = y1 - (y1 - y0) * (vals - lo) / (hi - lo)
        cv2.rectangle(img, (x0, y0), (x1, y1), (200, 200, 200), 1)
        if len(pts) > 1:
            cv2.polylines(img, [np.stack([xs, ys], 1).round().astype(np.int32)], False, (180, 80, 20), 1, cv2.LINE_AA)
        else:
            cv2.circle(img, (int(xs[0]), int(ys[0])), 3, (180, 80, 20), -1)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(img, f"{key}  last {vals[-1]:.4g}  (step {int(steps[-1])})", (x0, 14), font, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cv2.putText(img, f"{hi:.3g}", (2, y0 + 10), font, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
        cv2.putText(img, f"{lo:.3g}", (2, y1), font, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
        cv2.putText(img, f"{int(smax)}", (x1 - 50, h - 5), font, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
        panels.append(img)
    if not panels:
        return None
    cv2.imwrite(str(path), np.vstack(panels))
    return path


def append_metrics_csv(path: Path, row: dict[str, Any]) -> None:
    """Append one validation row; the header is written with the first row (and kept after)."""
    fields = ["step", "wall"] + sorted(k for k in row if k not in ("step", "wall"))
    if path.exists() and path.stat().st_size:
        with open(path, newline="") as f:
            fields = next(csv.reader(f), fields)
    new = not path.exists() or not path.stat().st_size
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _why_empty(data) -> str:
    """Why a data set came out empty, for the error message ('' when nothing was found at all)."""
    parts = []
    if data.unreadable:
        parts.append(f"{len(data.unreadable)} file(s) unreadable")
    if data.films:
        skipped = {k: sum(s["skipped"].get(k, 0) for s in data.films.values()) for k in ("grey", "black", "duplicate")}
        parts.append(f"every sampled film frame skipped ({skipped['grey']} black-and-white, {skipped['black']} "
                     f"near-black, {skipped['duplicate']} near-duplicates): training needs colour footage")
    return f" ({'; '.join(parts)})" if parts else ""


def _evenly(items: Sequence[Any], k: int) -> list[Any]:
    if len(items) <= k:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round()]


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate for (0-based) ``step``: ``cfg.lr``, falling linearly towards 0 over the last
    ``cfg.lr_decay_steps`` steps (pix2pix's schedule); a function of the step alone, so resume agrees."""
    if cfg.lr_decay_steps <= 0:
        return cfg.lr
    left = cfg.steps - step  # steps still to take, this one included
    return cfg.lr * min(1.0, left / (cfg.lr_decay_steps + 1))


def _rng_for(cfg: TrainConfig, step: int, d: Distributed) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, step] + ([d.rank] if d.world > 1 else []))


def data_threads(cfg: TrainConfig, device: torch.device) -> int:
    """Threads that cut a batch's crops: ``cfg.data_threads``, or for 0 one on CPU and up to 8 (half
    the cores) on CUDA, where one thread made a 64-crop 256 px batch no faster than an H200 step."""
    if cfg.data_threads > 0:
        return cfg.data_threads
    if device.type != "cuda":
        return 1
    from .inference import cpu_threads
    return max(1, min(8, cpu_threads() // 2))


# --- the loop ---------------------------------------------------------------------------------------
def train(cfg: TrainConfig, *, resume: bool = False, log: Callable[[str], None] = print,
          on_step: Callable[[int, dict[str, float]], None] | None = None,
          on_end: Callable[[dict[str, nn.Module]], None] | None = None) -> Path:
    """Run (or resume) a training run; returns the path of the saved EMA generator.

    ``on_step(step, losses)`` is called after every step on every rank; ``on_end(modules)`` at the
    end with the in-memory ``gen``, ``disc`` and ``ema`` (tests, callers that keep training)."""
    d = _setup_distributed(cfg.device)
    try:
        return _train(cfg, d, resume, log if d.rank == 0 else (lambda s: None), on_step, on_end)
    finally:
        if d.created:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, d: Distributed, resume: bool, log: Callable[[str], None],
           on_step: Callable[[int, dict[str, float]], None] | None,
           on_end: Callable[[dict[str, nn.Module]], None] | None) -> Path:
    device = _device(cfg.device, d.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    if d.rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    # data: photos and film frames; films are held out whole when no validation set is named
    train_sources: list[str | Path] = list(cfg.data)
    val_sources: list[str | Path] = list(cfg.val)
    held_out: list[Path] = []
    films = list_films(cfg.data)
    if not cfg.val and len(films) >= 2 and cfg.val_split > 0:
        train_films, held_out = split_by_film(films, cfg.val_split, cfg.seed)
        train_sources = list_images(cfg.data) + train_films
        val_sources = list(held_out)
    cache = None if cfg.cache in ("", "off", "none") else (default_cache_dir() if cfg.cache == "auto" else cfg.cache)
    if d.world > 1 and d.rank != 0:
        dist.barrier()  # rank 0 prepares the cache first; the others then map it
    t0 = time.perf_counter()
    train_data = load_sources(train_sources, cfg.max_side, cfg.film_frames, cache=cache)
    val_data = load_sources(val_sources, cfg.val_max_side, cfg.film_frames, cache=cache) if val_sources else None
    if held_out and not train_data.images and val_data is not None and val_data.images:
        # the film held out was the only one in colour (the rest black-and-white): trained on, not held out
        log(f"held out {', '.join(map(str, held_out))}, but the other films gave no colour frames: training on "
            "every film, with no held-out validation")
        train_data = load_sources(list(cfg.data), cfg.max_side, cfg.film_frames, cache=cache)
        val_data, held_out = None, []
    if d.world > 1 and d.rank == 0:
        dist.barrier()
    images = train_data.images
    unreadable = {**train_data.unreadable, **(val_data.unreadable if val_data else {})}
    for path, why in unreadable.items():
        log(f"skipped {path}: {why}")
    if not images:
        raise ValueError(f"no training images or film frames found in {', '.join(cfg.data) or '(nothing given)'}"
                         + _why_empty(train_data))
    val_images = _evenly(val_data.images, cfg.val_images) if val_data else []
    for film, s in {**train_data.films, **(val_data.films if val_data else {})}.items():
        log(f"film {film}: kept {s['kept']} of {s['candidates']} sampled frames (skipped {s['skipped']})")
    log(f"loaded {len(images)} training and {len(val_images)} validation images in {time.perf_counter() - t0:.1f}s"
        + (" (cached)" if train_data.cached else "") + (f"; held out {', '.join(map(str, held_out))}" if held_out else ""))

    # models
    gen_raw = UNetGenerator(cfg.ngf, cfg.num_downs).to(device)
    disc_raw = PatchDiscriminator(3, cfg.ndf).to(device)
    init_weights(gen_raw)
    init_weights(disc_raw)
    if cfg.init_from:
        from .weights import load_generator

        base, info = load_generator(cfg.init_from, device)
        if (info.arch_args.get("ngf"), info.arch_args.get("num_downs")) != (cfg.ngf, cfg.num_downs):
            raise ValueError(f"{cfg.init_from}: architecture {info.arch_args} differs from the config's")
        gen_raw.load_state_dict(base.state_dict())
    ema = copy.deepcopy(gen_raw).eval()
    opt_g = torch.optim.Adam(gen_raw.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(disc_raw.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    step, wall = 0, 0.0
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {}  # keep_best: {"step", "val", "state"} of the lowest validation L1 so far
    rng_states: list[dict[str, Any]] | None = None
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        gen_raw.load_state_dict(ck["gen"]); disc_raw.load_state_dict(ck["disc"]); ema.load_state_dict(ck["ema"])
        opt_g.load_state_dict(ck["opt_g"]); opt_d.load_state_dict(ck["opt_d"])
        step, wall, history = ck["step"], ck["wall"], json.loads(ck["history"])
        if "rng" in ck:
            rng_states = json.loads(ck["rng"])
        if "torch_rng" in ck:
            torch.set_rng_state(ck["torch_rng"].cpu())
        if "best_ema" in ck:
            best.update(json.loads(ck["best"]), state=ck["best_ema"])
        if "cuda_rng" in ck and device.type == "cuda":
            torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), device)
        log(f"resumed {ckpt_path} at step {step}")
    elif resume:  # a mistyped --out would otherwise start over without a word
        log(f"warning: nothing to resume: no {ckpt_path}; starting at step 0")
    rng = _rng_for(cfg, step, d)
    if rng_states and d.rank < len(rng_states):
        rng.bit_generator.state = rng_states[d.rank]
    rng_state = rng.bit_generator.state  # the state after the last consumed batch (checkpointed)
    gen_raw.to(memory_format=memory_format)
    disc_raw.to(memory_format=memory_format)
    gen, disc = gen_raw, disc_raw
    if d.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        gen = nn.parallel.DistributedDataParallel(gen_raw, device_ids=ids)
        disc = nn.parallel.DistributedDataParallel(disc_raw, device_ids=ids)

    def checkpoint(gather: bool = True) -> None:
        states = [rng_state]
        if d.world > 1 and gather:
            states = [None] * d.world
            dist.all_gather_object(states, rng_state)
        if d.rank != 0:
            return
        ck = {"gen": gen_raw.state_dict(), "disc": disc_raw.state_dict(), "ema": ema.state_dict(),
              "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step, "wall": wall,
              "history": json.dumps(history), "config": json.dumps(asdict(cfg)),
              "rng": json.dumps(states), "torch_rng": torch.get_rng_state()}
        if device.type == "cuda":
            ck["cuda_rng"] = torch.cuda.get_rng_state(device)
        if best:
            ck.update(best_ema=best["state"], best=json.dumps({"step": best["step"], "val": best["val"]}))
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(ck, tmp)
        os.replace(tmp, ckpt_path)
        plot_history(history, out / "loss.png")

    base_val: dict[str, float] = {}

    def save_model(metrics: dict[str, float] | None, final: bool = False, suffix: str = "") -> Path:
        path = out / f"{cfg.name}{suffix}.safetensors"
        if d.rank != 0:
            return path
        model, selected = ema, {}
        if final and cfg.keep_best and best:
            model = copy.deepcopy(ema)
            model.load_state_dict(best["state"])
            selected = {"selected_step": best["step"], "last_validation": metrics or {},
                        "selection": "the validation with the lowest L1 (keep_best)"}
            metrics = best["val"]
        hw = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
        card = {"name": cfg.name, "data": list(cfg.data), "val": [str(v) for v in val_sources],
                "held_out": [str(v) for v in held_out], "images": len(images), "films": len(train_data.films),
                "steps": step, "wall_time_s": round(wall, 1), "batch_size": cfg.batch_size * d.world,
                "crop": cfg.crop, "scale_range": list(cfg.scale_range), "processes": d.world,
                "precision": "bf16" if bf16 else "fp32",
                "hardware": f"{d.world} x {device.type}: {hw}, {torch.get_num_threads()} threads",
                "recipe": f"L1 warm-up {cfg.warmup_steps} steps, then cGAN + {cfg.lambda_l1:g}*L1, PatchGAN 70x70, "
                          f"EMA {cfg.ema_decay}, lr {cfg.lr:g}, damage {cfg.damage:g}",
                "validation": metrics or {}}
        if cfg.init_from:
            card.update(base_model=cfg.base_model or str(cfg.init_from), base_validation=base_val)
        if stopped:
            card.update(planned_steps=cfg.steps, stopped=f"time limit of {cfg.max_minutes:g} min")
        card.update(selected)
        return save_generator(model, path, "unet", {"ngf": cfg.ngf, "num_downs": cfg.num_downs}, card)

    def run_validation(model: nn.Module, tag: str = "") -> dict[str, float]:
        m = validate(model, val_images, device, gen_raw.multiple)
        append_metrics_csv(out / "metrics.csv", {"step": step, "wall": round(wall, 1), "model": tag or "ema", **m})
        if cfg.grid_images:
            write_grid(model, val_images[: cfg.grid_images], device, gen_raw.multiple, out / f"grid_{step:07d}.png")
        log(f"val step {step}{' ' + tag if tag else ''}: " + " ".join(f"{k}={v:.4f}" for k, v in m.items()))
        if cfg.keep_best and (not best or m["l1"] < best["val"]["l1"]):
            best.update(step=step, val=m, state={k: v.detach().clone() for k, v in model.state_dict().items()})
        return m

    if cfg.init_from and val_images and d.rank == 0:  # the starting model's score, for comparison
        base_val = next((r["base"] for r in history if "base" in r), {})
        if not base_val and step == 0:
            base_val = run_validation(ema, "base")
            history.append({"step": 0, "base": base_val})

    def time_is_up() -> bool:
        """Whether ``wall`` passed ``cfg.max_minutes``; under DDP rank 0 decides for all, every 50 steps."""
        up = wall >= 60.0 * cfg.max_minutes
        if d.world > 1:
            if step % 50:
                return False
            flag = torch.tensor([float(up)], device=device)
            dist.broadcast(flag, 0)
            up = bool(flag.item())
        return up

    gen.train(); disc.train()
    last_val: dict[str, float] | None = None
    stopped = False  # max_minutes ended the run
    stream = BatchStream(images, cfg.batch_size, cfg.crop, rng, cfg.scale_range, cfg.damage, cfg.prefetch,
                         pin_memory=device.type == "cuda", threads=data_threads(cfg, device))
    t_step, t_wait = time.perf_counter(), 0.0
    try:
        while step < cfg.steps:
            t_data = time.perf_counter()
            batch = next(stream)
            t_wait += time.perf_counter() - t_data
            rng_state = batch.rng_state
            L, ab = lab_batch(batch.rgb, device)
            if batch.damage_seed is not None:
                L = film_damage(L, cfg.damage, batch.damage_seed)
            L, ab = L.contiguous(memory_format=memory_format), ab.contiguous(memory_format=memory_format)
            lr = learning_rate(cfg, step)
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            with amp():
                fake = gen(L)
            adversarial = step >= cfg.warmup_steps
            losses: dict[str, float] = {}
            if adversarial:
                opt_d.zero_grad(set_to_none=True)
                with amp():
                    d_real = disc(L, ab).float()
                    d_fake = disc(L, fake.detach()).float()
                loss_d = 0.5 * (F.binary_cross_entropy_with_logits(d_real, soft_labels(d_real, True, cfg.label_flip))
                                + F.binary_cross_entropy_with_logits(d_fake, soft_labels(d_fake, False, cfg.label_flip)))
                loss_d.backward()
                opt_d.step()
                losses["d"] = float(loss_d.detach())
            opt_g.zero_grad(set_to_none=True)
            loss_l1 = F.l1_loss(fake.float(), ab)
            loss_g = cfg.lambda_l1 * loss_l1
            if adversarial:
                disc_raw.requires_grad_(False)  # the generator step needs only d(loss)/d(fake)
                with amp():
                    d_out = disc_raw(L, fake).float()
                disc_raw.requires_grad_(True)
                loss_gan = F.binary_cross_entropy_with_logits(d_out, torch.ones_like(d_out))
                loss_g = loss_g + loss_gan
                losses["g_gan"] = float(loss_gan.detach())
            loss_g.backward()
            opt_g.step()
            ema_update(ema, gen_raw, cfg.ema_decay if step >= 100 else 0.0)
            step += 1
            now = time.perf_counter()
            wall += now - t_step
            t_step = now
            losses["l1"] = float(loss_l1.detach())
            if on_step:
                on_step(step, losses)
            if step % 50 == 0 or step == cfg.steps:
                history.append({"step": step, "wall": round(wall, 1), **{k: round(v, 5) for k, v in losses.items()}})
                log(f"step {step}/{cfg.steps} " + " ".join(f"{k}={v:.4f}" for k, v in losses.items())
                    + f" {step * cfg.batch_size * d.world / max(wall, 1e-9):.1f} img/s"
                    + f" (data wait {100 * t_wait / max(wall, 1e-9):.0f}%)")
            if d.rank == 0 and val_images and (step % cfg.val_every == 0 or step == cfg.steps):
                last_val = run_validation(ema)
                history.append({"step": step, **{f"val_{k}": round(v, 5) for k, v in last_val.items()}})
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                checkpoint()
                save_model(last_val)
            if step == cfg.warmup_steps < cfg.steps:  # the L1-only generator, for network interpolation
                save_model(last_val, suffix="-l1")
            if cfg.max_minutes and time_is_up():
                log(f"time limit of {cfg.max_minutes:g} min reached at step {step} of {cfg.steps}")
                stopped = True
                if step % 50:
                    history.append({"step": step, "wall": round(wall, 1), **{k: round(v, 5) for k, v in losses.items()}})
                if d.rank == 0 and val_images and step % cfg.val_every:
                    last_val = run_validation(ema)
                checkpoint()
                break
    except KeyboardInterrupt:
        stream.close()
        checkpoint(gather=False)
        save_model(last_val)
        log(f"interrupted at step {step}; checkpoint saved to {ckpt_path}")
        raise
    stream.close()
    if on_end:
        on_end({"gen": gen_raw, "disc": disc_raw, "ema": ema})
    return save_model(last_val, final=True)


def train_config_from_preset(preset: str, /, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` from a preset's ``[train]`` table (``configs/<preset>.toml`` or the user's own
    file, ``config.preset_table``), then ``overrides`` (None = keep)."""
    from dataclasses import fields

    from .config import preset_table

    table = preset_table(preset, "train")
    table.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(table) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"preset {preset!r}: unknown keys {', '.join(sorted(unknown))}")
    for key in ("data", "val"):
        if key in table:
            table[key] = tuple(str(v) for v in table[key])
    if "scale_range" in table:
        table["scale_range"] = tuple(table["scale_range"])
    return TrainConfig(**table)


# --- fine-tuning ----------------------------------------------------------------------------------------
GENRE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def finetune(genre: str, sources: Sequence[str | Path], steps: int | None = None, from_model: str = "default", *,
             val: Sequence[str | Path] = (), out: str | None = None, preset: str = "finetune",
             resume: bool = False, log: Callable[[str], None] = print,
             on_step: Callable[[int, dict[str, float]], None] | None = None, **overrides: Any) -> Path:
    """Teach a model a genre: the training loop with the ``finetune`` preset (low lr, short L1
    warm-up), starting from ``from_model``'s generator, on frames sampled from ``sources`` (colour
    films of that genre; photos work too). Whole films are held out for validation when there are
    several and no ``val`` is named. The EMA generator is saved as
    ``weights.models_dir()/<genre>.safetensors`` with a card naming the base model, the sources, the
    steps and the validation L1 of the base and the fine-tuned model; returns that path."""
    from .weights import models_dir, resolve_model

    if not GENRE_NAME.match(genre) or genre == "default":
        raise ValueError(f"genre must be a simple name (letters, digits, _ . -) other than 'default', got {genre!r}")
    if not sources:
        raise ValueError("finetune needs at least one source film (or folder)")
    info = resolve_model(from_model)
    cfg = train_config_from_preset(
        preset, data=tuple(str(s) for s in sources), val=tuple(str(v) for v in val) or None, steps=steps,
        name=genre, out=out or str(Path("runs") / f"finetune-{genre}"), init_from=str(info.path),
        base_model=f"{info.name} ({info.source}, sha256 {info.sha256[:12]})",
        ngf=info.arch_args["ngf"], num_downs=info.arch_args["num_downs"], **overrides)
    path = train(cfg, resume=resume, log=log, on_step=on_step)
    dest = models_dir() / f"{genre}.safetensors"
    if int(os.environ.get("RANK", "0")) == 0:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
        tmp.write_bytes(path.read_bytes())
        os.replace(tmp, dest)
        log(f"saved genre model {genre!r} to {dest}")
    return dest
