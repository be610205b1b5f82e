#!/usr/bin/env python
"""Speed of `filmcolor run`, stage by stage, against its I/O floor and a DeOldify-style baseline.

For each clip (and, with ``--synthetic``, generated 854x480 and 1920x1080 B&W clips), in one run:

- ``decode``       decode + Y/U/V planes (what the pipeline's decode thread does, minus L*)
- ``model``        ``Colorizer.predict_ab`` on the clip's render-size L*, in batches (warm): of the picture
                   inside black bars where the run finds them (``--bars auto``), as the run colours it
- ``encode``       pre-decoded frames (source Y + the coloured U/V of the end-to-end output) through
                   ``media.VideoWriter`` with the run's encoder settings (audio copied too)
- ``decode+encode`` the I/O floor: decode the clip in a thread, swap in the coloured U/V, encode in a
                   thread (same threads and queues as the pipeline, no network, no compose)
- ``end-to-end``   ``pipeline.colorize_file`` with the default settings (model already loaded);
                   with ``--smooth-off`` also with ``smooth=off``, for the cost of temporal smoothing
- ``frame-dump``   the DeOldify way: every frame written as JPEG, coloured one by one (batch 1, full
                   RGB -> Lab -> network -> full-resolution Lab -> RGB; bars and all), written as JPEG, re-encoded
                   from the JPEGs with PyAV, audio added back by a remux

and the ratios the speed issue asks for: end-to-end time / model-only time, end-to-end time /
decode+encode time, frame-dump time / end-to-end time. ``cpu ms/frame`` is process CPU time per
frame (all threads): on a CPU-bound machine the stages share the cores, so it explains the ratios.
With ``--per-thread``, each pipeline thread's work (decode, flow, the calling thread's model +
smooth, compose, encode) is also timed alone on up to 300 frames: the slowest bounds end to end.

Usage::

    python scripts/bench.py samples/steamboat_willie_1928.mp4 --synthetic --frames 300 --json bench.json
    python scripts/bench.py --synthetic --device cuda --frames 600 --profile   # on a GPU machine

The model is loaded (and warmed up) before timing; ``--model`` takes a name or a weights path.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from filmcolor import color, look, media, outputs, pipeline, synth, temporal  # noqa: E402
from filmcolor.config import RunConfig  # noqa: E402
from filmcolor.cpu import proc_cpuinfo  # noqa: E402
from filmcolor.inference import Colorizer, resolve_device  # noqa: E402
from filmcolor.weights import load_generator  # noqa: E402

SYNTHETIC = {"synthetic-480p": (854, 480), "synthetic-1080p": (1920, 1080)}


# --- machine ---------------------------------------------------------------------------------------
def cpu_model() -> str:
    for line in proc_cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(colorizer: Colorizer) -> dict:
    info = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyav": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "device": str(colorizer.device),
        "precision": str(colorizer.dtype).replace("torch.", ""),
        "torch_threads_per_worker": colorizer.intra_threads or torch.get_num_threads(),
        "inference_workers": colorizer.workers,
        "batch_size": colorizer.batch_size,
        "compiled": colorizer.compiled,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if colorizer.device.type == "cuda":
        props = torch.cuda.get_device_properties(colorizer.device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    return info


# --- timing ----------------------------------------------------------------------------------------
@dataclass
class Stage:
    frames: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = {"frames": self.frames, "seconds": round(self.seconds, 4), "fps": round(self.fps, 2),
             "cpu_ms_per_frame": round(1000 * self.cpu_seconds / self.frames, 2) if self.frames else None}
        d.update(self.extra)
        return d


def timed(fn: Callable[[], int], sync: Callable[[], None] = lambda: None) -> Stage:
    sync()
    c0, t0 = time.process_time(), time.perf_counter()
    n = fn()
    sync()
    return Stage(n, time.perf_counter() - t0, time.process_time() - c0)


class GpuSampler:
    """Polls ``nvidia-smi`` for GPU utilisation while a stage runs (CUDA only; silent elsewhere)."""

    def __init__(self, enabled: bool, period: float = 0.2) -> None:
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self) -> "GpuSampler":
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        return {"gpu_util_mean_pct": round(float(np.mean(self.samples)), 1),
                "gpu_util_max_pct": round(float(np.max(self.samples)), 1)}


# --- stages ----------------------------------------------------------------------------------------
def limited(it, n: int):
    for i, x in enumerate(it):
        if i >= n:
            break
        yield x


def decode_only(src: Path, pix_fmt: str, n: int) -> int:
    count = 0
    frames = media.decode(src)
    try:
        for f in limited(frames, n):
            media.frame_to_planes(f, pix_fmt)
            count += 1
    finally:
        frames.close()
    return count


def render_L(src: Path, pix_fmt: str, colorizer: Colorizer, n: int, turns: int, area=None) -> np.ndarray:
    """The render-size L* the run gives the network (of the picture inside black bars ``area``)."""
    frames = media.decode(src)
    try:
        items = list(pipeline._frame_items(limited(frames, n), pix_fmt, colorizer, turns=turns, chroma_L=False,
                                           area=area))
    finally:
        frames.close()
    return np.stack([it.L for it in items])


def model_only(colorizer: Colorizer, L: np.ndarray) -> int:
    bs = colorizer.batch_size
    for i in range(0, len(L), bs):
        colorizer.predict_ab(L[i:i + bs])
    return len(L)


def coloured_chroma(path: Path, n: int, pix_fmt: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """U/V planes of the first ``n`` frames of the coloured output (what the encoder really gets)."""
    out = []
    frames = media.decode(path)
    try:
        for f in limited(frames, n):
            p = media.frame_to_planes(f, pix_fmt)
            out.append((p.u, p.v))
    finally:
        frames.close()
    return out


def recoloured(src: Path, pix_fmt: str, uv: list, n: int):
    """Source frames with the coloured U/V swapped in, as the encoder gets them in a real run."""
    frames = media.decode(src)
    try:
        for i, f in enumerate(limited(frames, n)):
            p = media.frame_to_planes(f, pix_fmt)
            u, v = uv[i % len(uv)]
            if u.shape != p.u.shape:  # rotated or odd: keep the source's own chroma
                u, v = p.u, p.v
            out = media.planes_to_frame(pipeline._with_chroma(p, u, v), pix_fmt, f)
            if out.pts is None:
                out.pts, out.time_base = f.pts, f.time_base
            yield out
    finally:
        frames.close()


def encode_only(src: Path, info, config: RunConfig, frames: list, dst: Path, duration: float | None) -> int:
    with media.VideoWriter(src, dst, info, codec=config.codec, crf=config.crf, preset=config.preset,
                           duration=duration) as w:
        for f in frames:
            w.write(f)
    return len(frames)


def decode_encode(src: Path, info, config: RunConfig, pix_fmt: str, uv: list, n: int, dst: Path,
                  duration: float | None) -> int:
    """The I/O floor with the pipeline's own threads: decode thread -> encode thread."""
    with media.VideoWriter(src, dst, info, codec=config.codec, crf=config.crf, preset=config.preset,
                           duration=duration) as w:
        items = pipeline.prefetch(recoloured(src, pix_fmt, uv, n), 18)
        sink = pipeline.Sink(w.write, 18)
        try:
            for f in items:
                sink.put(f)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        finally:
            items.close()
        return sink.done


def frame_dump_baseline(src: Path, info, config: RunConfig, colorizer: Colorizer, n: int, work: Path,
                        dst: Path) -> int:
    """DeOldify's flow: JPEG dump -> colour each JPEG at batch 1 (full RGB Lab path) -> JPEG ->
    re-encode from the JPEGs -> remux the source audio back in."""
    bw, col = work / "bwframes", work / "colorframes"
    bw.mkdir()
    col.mkdir()
    jpeg = [int(cv2.IMWRITE_JPEG_QUALITY), 95]
    count = 0
    for i, f in enumerate(limited(media.decode(src), n)):  # 1. every frame to JPEG
        cv2.imwrite(str(bw / f"{i:06d}.jpg"), f.to_ndarray(format="bgr24"), jpeg)
        count += 1
    for p in sorted(bw.iterdir()):  # 2. colour one by one, full resolution Lab
        rgb = cv2.imread(str(p))[..., ::-1].astype(np.float32) / 255.0
        L = color.rgb_to_lab_np(rgb)[..., 0]
        out = pipeline.colorize_rgb(L, colorizer)
        cv2.imwrite(str(col / p.name), np.rint(np.clip(out, 0, 1)[..., ::-1] * 255).astype(np.uint8), jpeg)
    video_only = work / f"video{dst.suffix}"
    rate = info.fps if info.fps else 25
    with av.open(str(video_only), "w") as out:  # 3. re-encode from the JPEGs
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = info.width - info.width % 2, info.height - info.height % 2, "yuv420p"
        vs.options = {"crf": str(config.crf), "preset": config.preset}
        for i, p in enumerate(sorted(col.iterdir())):
            img = cv2.imread(str(p))[: vs.height, : vs.width]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            frame.pts = i
            out.mux(vs.encode(frame.reformat(format="yuv420p")))
        out.mux(vs.encode(None))
    with av.open(str(video_only)) as v_in, av.open(str(src), metadata_errors="ignore") as a_in, \
            av.open(str(dst), "w") as out:  # 4. add the audio back (remux, no re-encode)
        vmap = {v_in.streams.video[0].index: out.add_stream_from_template(v_in.streams.video[0])}
        amap = {}
        for s in a_in.streams.audio:
            try:
                amap[s.index] = out.add_stream_from_template(s)
            except (ValueError, av.error.FFmpegError):
                pass
        end = count / float(rate)
        for packet in v_in.demux(v_in.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = vmap[packet.stream.index]
            out.mux(packet)
        if amap:
            for packet in a_in.demux([a_in.streams[i] for i in amap]):
                if packet.dts is None or packet.pts is None or packet.pts * packet.time_base >= end:
                    continue
                packet.stream = amap[packet.stream.index]
                out.mux(packet)
    return count


def per_thread(src: Path, info, config: RunConfig, colorizer: Colorizer, n: int, pix_fmt: str, turns: int,
               dst: Path, sync: Callable[[], None]) -> dict[str, float]:
    """Each pipeline thread's work on the first ``n`` frames, timed alone, one after another (wall
    ms per frame). In the pipelined run the threads overlap, so the slowest one bounds its speed."""
    ms: dict[str, float] = {}

    def clock(name: str, fn: Callable[[], object], frames: int | None = None) -> object:
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        ms[name] = 1000 * (time.perf_counter() - t0) / max(1, frames if frames is not None else len(out))
        return out

    area = look.picture_area(src, info, config)
    items = clock("decode", lambda: list(pipeline._frame_items(limited(media.decode(src), n), pix_fmt, colorizer,
                                                               False, turns, not colorizer.on_device_compose,
                                                               None if area.whole else area)))
    motion = temporal.motion_ahead(config.smooth, config.smooth_strength, config.cut_threshold)
    if motion is not None:
        clock("flow", lambda: [setattr(it, "motion", motion(it.L)) for it in items])
    clock("model", lambda: list(pipeline.batched(iter(items), colorizer)))
    clock("smooth", lambda: list(temporal.smooth(iter(items), config.smooth, config.smooth_strength,
                                                 config.cut_threshold)))
    ms["calling"] = ms["model"] + ms["smooth"]
    frames = clock("compose", lambda: [pipeline._compose_frame(it, pix_fmt, turns, colorizer) for it in items])
    fps = float(info.fps) if info.fps else 25.0

    def encode() -> None:
        with media.VideoWriter(src, dst, info, codec=config.codec, crf=config.crf, preset=config.preset,
                               duration=len(frames) / fps) as w:
            for f in frames:
                w.write(f)
    clock("encode", encode, len(frames))
    return {k: round(v, 3) for k, v in ms.items()}


def profile_batch(colorizer: Colorizer, L: np.ndarray, rows: int = 15) -> str:
    """torch.profiler table of one batch (where the network's time goes)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if colorizer.device.type == "cuda" else [])
    batch = L[: colorizer.batch_size]
    colorizer.predict_ab(batch)
    with profile(activities=acts) as prof:
        colorizer.predict_ab(batch)
    key = "cuda_time_total" if colorizer.device.type == "cuda" else "cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


# --- one clip --------------------------------------------------------------------------------------
def bench_clip(src: Path, name: str, config: RunConfig, colorizer: Colorizer, baseline_colorizer: Colorizer,
               n: int, work: Path, skip_baseline: bool, sequential: bool, profile: bool, log,
               smooth_off: bool = False, threads: bool = False) -> dict:
    info = media.probe(src)
    pix_fmt = media.writer_pix_fmt(config.codec, info)
    fps = float(info.fps) if info.fps else 25.0
    total = outputs.expected_frames(info, config) or n
    n = min(n, total)
    duration = n / fps if n < total else None
    turns = media.quarter_turns(info.rotation)
    cuda = colorizer.device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(colorizer.device)) if cuda else (lambda: None)
    run_config = config.with_overrides(duration=duration, overwrite=True)
    area = look.picture_area(src, info, run_config)  # the network sees what the run shows it
    area = None if area.whole else area
    h, w = (area.height, area.width) if area else (info.height, info.width)
    rh, rw = colorizer.render_shape(*((h, w) if turns % 2 == 0 else (w, h)))
    colorizer.plan_batch(rh, rw)
    res: dict = {"clip": name, "path": str(src), "width": info.width, "height": info.height,
                 "picture": str(area) if area else None, "fps": round(fps, 3), "frames": n, "render": [rh, rw],
                 "network_input": list(colorizer.padded_shape(rh, rw)), "batch_size": colorizer.batch_size,
                 "stages": {}}
    st = res["stages"]

    log(f"{name}: {info.width}x{info.height}{f' (picture {area})' if area else ''}, {n} frames, render {rh}x{rw}")
    decode_only(src, pix_fmt, min(n, 10))  # warm the file cache
    st["decode"] = timed(lambda: decode_only(src, pix_fmt, n))
    L = render_L(src, pix_fmt, colorizer, n, turns, area)
    model_only(colorizer, L[: colorizer.batch_size])  # warm-up (and compile, if asked)
    with GpuSampler(cuda) as g:
        st["model"] = timed(lambda: model_only(colorizer, L), sync)
    st["model"].extra.update(g.summary())
    if profile:
        res["profile_one_batch"] = profile_batch(colorizer, L)
    del L

    out = work / f"{name}.color{src.suffix if src.suffix.lower() in outputs.KEEP_SUFFIXES else '.mkv'}"
    with GpuSampler(cuda) as g:
        st["end-to-end"] = timed(lambda: pipeline.colorize_file(src, out, run_config, colorizer=colorizer).frames,
                                 sync)
    st["end-to-end"].extra.update(g.summary())
    if smooth_off and run_config.smooth != "off":
        st["end-to-end smooth off"] = timed(lambda: pipeline.colorize_file(
            src, work / f"off{out.suffix}", run_config.with_overrides(smooth="off"), colorizer=colorizer).frames, sync)
    if sequential:
        st["end-to-end sequential"] = timed(lambda: pipeline.colorize_file(
            src, work / f"seq{out.suffix}", run_config, colorizer=colorizer, pipelined=False).frames, sync)

    uv = coloured_chroma(out, min(n, 64), pix_fmt)
    frames = list(recoloured(src, pix_fmt, uv, min(n, 600)))  # bounded: 600 1080p frames ~ 1.9 GB
    st["encode"] = timed(lambda: encode_only(src, info, config, frames, work / f"enc{out.suffix}",
                                             len(frames) / fps if len(frames) < total else None))
    del frames
    st["decode+encode"] = timed(lambda: decode_encode(src, info, config, pix_fmt, uv, n, work / f"io{out.suffix}",
                                                      duration))
    if threads:
        res["per_thread_ms_per_frame"] = per_thread(src, info, config, colorizer, min(n, 300), pix_fmt, turns,
                                                    work / f"threads{out.suffix}", sync)
    if not skip_baseline:
        bdir = work / f"{name}-dump"
        bdir.mkdir()
        st["frame-dump"] = timed(lambda: frame_dump_baseline(src, info, config, baseline_colorizer, n, bdir,
                                                             work / f"dump{out.suffix}"))
        shutil.rmtree(bdir, ignore_errors=True)

    e2e = st["end-to-end"].seconds
    res["ratios"] = {
        "end_to_end_over_model_only": round(e2e / st["model"].seconds, 3),
        "end_to_end_over_decode_encode": round(e2e / st["decode+encode"].seconds, 3),
    }
    if "end-to-end smooth off" in st:  # what the temporal smoothing costs end to end
        res["ratios"][f"end_to_end_over_smooth_off ({run_config.smooth})"] = round(
            e2e / st["end-to-end smooth off"].seconds, 3)
    if "frame-dump" in st:
        res["ratios"]["frame_dump_over_end_to_end"] = round(st["frame-dump"].seconds / e2e, 2)
    res["stages"] = {k: v.to_dict() for k, v in st.items()}
    return res


# --- output ----------------------------------------------------------------------------------------
def print_results(mach: dict, results: list[dict]) -> None:
    header = (f"filmcolor bench  {mach['date']}\n{mach['cpu']} ({mach['usable_cores']} of {mach['cores']} cores, "
              f"{mach['cpu_capability']}), torch {mach['torch']}, device {mach['device']} {mach.get('gpu', '')}, "
              f"{mach['precision']}, {mach['inference_workers']} inference worker(s) x "
              f"{mach['torch_threads_per_worker']} torch thread(s), {mach['opencv_threads']} OpenCV thread(s), "
              f"load average {mach['load_average']}")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        print(header)
        for r in results:
            print(f"\n{r['clip']}  {r['width']}x{r['height']}  {r['frames']} frames  render {r['render']}")
            for k, v in r["stages"].items():
                print(f"  {k:<24} {v['fps']:>9.1f} fps  {v['seconds']:>8.2f} s  {v['cpu_ms_per_frame']} cpu ms/frame")
            for k, v in r["ratios"].items():
                print(f"  {k:<32} {v}")
            if "per_thread_ms_per_frame" in r:
                print(f"  each thread's work alone, ms/frame: {r['per_thread_ms_per_frame']}")
        return
    console = Console()
    console.print(header)
    for r in results:
        t = Table(title=f"{r['clip']}  {r['width']}x{r['height']}, {r['frames']} frames, "
                        f"network at {r['network_input'][0]}x{r['network_input'][1]}, batch {r['batch_size']}")
        t.add_column("stage")
        t.add_column("fps", justify="right")
        t.add_column("seconds", justify="right")
        t.add_column("cpu ms/frame", justify="right")
        t.add_column("notes")
        for k, v in r["stages"].items():
            notes = ", ".join(f"{a}={b}" for a, b in v.items() if a.startswith("gpu"))
            t.add_row(k, f"{v['fps']:.1f}", f"{v['seconds']:.2f}", str(v["cpu_ms_per_frame"]), notes)
        for k, v in r["ratios"].items():
            t.add_row(k.replace("_", " "), "", f"{v}x", "", "")
        console.print(t)
        if "per_thread_ms_per_frame" in r:
            console.print("each thread's work alone, ms/frame: " + ", ".join(
                f"{k} {v:.2f}" for k, v in r["per_thread_ms_per_frame"].items()))
        if "profile_one_batch" in r:
            console.print(r["profile_one_batch"], markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", type=Path, help="films to measure")
    ap.add_argument("--synthetic", action="store_true", help="also generate and measure 854x480 and 1920x1080 clips")
    ap.add_argument("--sizes", nargs="+", choices=sorted(SYNTHETIC), default=sorted(SYNTHETIC),
                    help="which synthetic clips (default: all)")
    ap.add_argument("--cv-threads", type=int, default=-1,
                    help="cv2.setNumThreads for resize, optical flow and compose on the CPU (-1: filmcolor's cap)")
    ap.add_argument("--frames", type=int, default=300, help="frames per clip (default 300)")
    ap.add_argument("--model", default="default", help="model name or weights path")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--render-size", type=int, default=RunConfig().render_size)
    ap.add_argument("--batch-size", type=int, default=RunConfig().batch_size)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads in all (0: filmcolor's choice)")
    ap.add_argument("--workers", type=int, default=0, help="CPU inference workers (0: filmcolor's choice)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (with freezing on CPU)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the (slow) frame-dump baseline")
    ap.add_argument("--sequential", action="store_true", help="also time the unpipelined path")
    ap.add_argument("--smooth-off", action="store_true",
                    help="also time end-to-end with --smooth off (the cost of the default temporal smoothing)")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table of one batch")
    ap.add_argument("--per-thread", action="store_true",
                    help="also time each pipeline thread's work alone (ms/frame): the slowest bounds end to end")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--workdir", type=Path, help="keep clips and outputs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if not args.clips and not args.synthetic:
        ap.error("give clips and/or --synthetic")

    config = RunConfig(model=args.model, device=args.device, precision=args.precision,
                       render_size=args.render_size, batch_size=args.batch_size, threads=args.threads)
    device = resolve_device(config.device)
    model, _ = load_generator(config.model, device)
    colorizer = Colorizer(model, device, config.precision, config.batch_size, config.render_size,
                          threads=config.threads, compile=args.compile, auto_batch=device.type == "cuda",
                          workers=args.workers)
    if args.cv_threads >= 0:  # after the Colorizer, which caps OpenCV's pool
        cv2.setNumThreads(args.cv_threads)
    # the baseline colours one frame at a time: give that one call every torch thread
    baseline = Colorizer(model, device, config.precision, 1, config.render_size,
                         threads=colorizer.workers * colorizer.intra_threads if device.type == "cpu" else 0)
    mach = machine(colorizer)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="filmcolor-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        clips: list[tuple[str, Path]] = [(p.stem, p) for p in args.clips]
        if args.synthetic:
            rate = 25
            for name, (w, h) in SYNTHETIC.items():
                if name not in args.sizes:
                    continue
                path = work / f"{name}-{args.frames}.mp4"
                if not path.exists():
                    log(f"making {path.name}")
                    synth.make_clip(path, frames=args.frames, width=w, height=h, fps=rate, color=False)
                clips.append((name, path))
        results = []
        for name, path in clips:
            cdir = work / f"run-{name}"
            shutil.rmtree(cdir, ignore_errors=True)
            cdir.mkdir()
            results.append(bench_clip(path, name, config, colorizer, baseline, args.frames, cdir,
                                      args.no_baseline, args.sequential, args.profile, log, args.smooth_off,
                                      args.per_thread))
            shutil.rmtree(cdir, ignore_errors=True)
    finally:
        colorizer.close()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print_results(mach, results)
    if args.json:
        args.json.write_text(json.dumps({"machine": mach, "results": results}, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
