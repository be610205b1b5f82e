#!/usr/bin/env python
"""Peak memory of `filmcolor run` is flat in film length: a long film vs a short one.

Generates two synthetic B&W 854x480 films with AAC audio (default 1 and 10 minutes, 25 fps) once
into a cache folder, colours each with ``python -m filmcolor run`` in its own subprocess, and reads
that process's peak resident set size from ``os.wait4`` (the kernel's ``ru_maxrss`` of exactly that
child). Prints both peaks, the ratio long/short (target <= 1.2) and the speed of each run.

    python scripts/bench_memory.py --model default                       # 1 min vs 10 min
    python scripts/bench_memory.py --short-seconds 2 --long-seconds 6    # smoke test
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from filmcolor import synth  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "filmcolor-bench"


def film(cache: Path, seconds: float, fps: int, width: int, height: int) -> Path:
    """The cached synthetic film of that length (made once; written atomically)."""
    path = cache / f"synthetic-{width}x{height}-{fps}fps-{seconds:g}s.mp4"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"making {path} (once)", file=sys.stderr, flush=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.mp4")
        try:
            synth.make_clip(tmp, frames=int(round(seconds * fps)), width=width, height=height, fps=fps,
                            color=False, audio=("aac",))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def run_peak(src: Path, out: Path, args) -> dict:
    """Colour ``src`` in a subprocess; its peak RSS (MiB), wall time and exit code."""
    cmd = [sys.executable, "-m", "filmcolor", "run", str(src), "-o", str(out), "--overwrite", "--quiet",
           "--model", args.model, "--device", args.device]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return {"input": str(src), "seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short-seconds", type=float, default=60.0)
    ap.add_argument("--long-seconds", type=float, default=600.0)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--size", default="854x480", help="WxH of the synthetic films")
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where the films are kept (default {DEFAULT_CACHE})")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    short = film(args.cache, args.short_seconds, args.fps, width, height)
    long = film(args.cache, args.long_seconds, args.fps, width, height)
    with tempfile.TemporaryDirectory(prefix="filmcolor-mem-") as tmp:
        results = {}
        for name, src in (("short", short), ("long", long)):
            print(f"colouring {src.name}", file=sys.stderr, flush=True)
            results[name] = run_peak(src, Path(tmp) / f"{name}.color.mp4", args)
            results[name]["film_seconds"] = args.short_seconds if name == "short" else args.long_seconds
    ratio = results["long"]["peak_rss_mib"] / results["short"]["peak_rss_mib"]
    report = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "cores": os.cpu_count(), "size": args.size, "device": args.device, "model": args.model,
              **results, "ratio_long_over_short": round(ratio, 3), "target": 1.2, "pass": ratio <= 1.2}
    for name in ("short", "long"):
        r = results[name]
        print(f"{name:>5}: {r['film_seconds']:>6g} s film  peak RSS {r['peak_rss_mib']:>8.1f} MiB  "
              f"({r['seconds']:.1f} s wall, {r['film_seconds'] * args.fps / r['seconds']:.1f} fps incl. start-up)")
    print(f"ratio long/short: {ratio:.3f} (target <= 1.2: {'pass' if ratio <= 1.2 else 'FAIL'})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
