"""What this machine's CPU can do, from Linux's ``/proc/cpuinfo`` (read once per process).

Used to pick code paths that depend on the instruction set: bf16 inference
(:func:`filmcolor.inference.cpu_has_native_bf16`) and x264's assembly level
(:func:`filmcolor.media.x264_params`). Elsewhere than Linux the flags are empty, so every
choice falls back to its portable default."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def proc_cpuinfo() -> str:
    """Linux's /proc/cpuinfo, read once per process ("" elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The first ``flags`` line of ``cpuinfo`` (default: this machine's /proc/cpuinfo) as a set;
    empty where there is none (non-x86, non-Linux)."""
    if cpuinfo is None:
        cpuinfo = proc_cpuinfo()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()
