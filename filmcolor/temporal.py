"""Temporal steadiness: chroma smoothing over a stream of frames, scene cuts, luminance deflicker.

``smooth(items, mode, strength, cut_threshold)`` takes an iterator of :class:`FrameItem` in display
order and yields the same items, in the same order and number, with ``ab`` replaced by the smoothed
chroma. It holds a bounded number of items (``lookahead`` + 1 for ``flow``, none for ``off``/``ema``)
and never the whole film. A scene cut (a large change of the L histogram) resets the state, so colour
never bleeds across a cut.

Modes:

- ``off``: items pass through untouched.
- ``ema``: per-pixel exponential moving average of ab (weight ``strength`` on the past). Cheap, but
  it smears moving objects' colour along their path.
- ``flow``: motion-compensated averaging at ``flow_scale`` x render size. Optical flow (OpenCV DIS)
  on L between neighbouring frames aligns the running ab average to the current frame; an L
  brightness check along the flow (plus, with look-ahead, a forward-backward consistency check)
  gives each pixel a confidence in [0, 1], and only confident pixels take colour from their past.
  With ``lookahead`` > 0 the opposite flows also carry the next few frames' ab backwards, so each
  frame is a two-sided (zero-lag) average along motion paths. Per pixel, frame ``t``'s low-pass
  chroma becomes ``sum_k w_k ab_{t+k} / sum_k w_k`` with ``w_k = prod(strength * confidence)`` along
  the path; the network's finer chroma detail (above the flow size) is kept as predicted.
  See docs/TEMPORAL.md for the cost and the defaults.

:func:`deflicker` evens out frame-to-frame brightness pumping of luma planes (off by default in the
pipeline: it changes the film's own luminance).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from filmcolor.metrics import make_dis, to_u8

MODES = ("off", "ema", "flow")


@dataclass
class FrameItem:
    """One frame in flight: ``L`` is render-size L* (h, w) float32 in [0, 100]; ``ab`` is (2, h, w)
    float32 in a/b units, filled by the network and then by the smoother; ``frame`` is the source
    frame (opaque here) that compose and encode need."""

    index: int
    frame: Any
    L: np.ndarray
    ab: np.ndarray | None = None
    motion: "Motion | None" = None      # set ahead by a FlowMotion (the pipeline's flow thread), or None


# --- scene cuts -----------------------------------------------------------------------------------
def _hist(L: np.ndarray, bins: int, hi: float = 100.0) -> np.ndarray:
    h = cv2.calcHist([np.ascontiguousarray(L, dtype=np.float32)], [0], None, [bins], [0, hi]).ravel()
    return h / max(float(h.sum()), 1.0)


def histogram_distance(L0: np.ndarray, L1: np.ndarray, bins: int = 32) -> float:
    """Half the L1 distance between the normalised L histograms of two frames: 0 same, 1 disjoint."""
    return 0.5 * float(np.abs(_hist(L0, bins) - _hist(L1, bins)).sum())


def is_cut(prev_L: np.ndarray | None, L: np.ndarray, threshold: float = 0.35) -> bool:
    """True when ``L`` starts a new shot relative to ``prev_L`` (or there is no previous frame)."""
    return prev_L is None or prev_L.shape != L.shape or histogram_distance(prev_L, L) > threshold


# --- smoothing ------------------------------------------------------------------------------------
def smooth(items: Iterable[FrameItem], mode: str = "ema", strength: float = 0.5,
           cut_threshold: float = 0.35, *, lookahead: int = 2, flow_scale: float = 0.5,
           preset: str = "fast") -> Iterator[FrameItem]:
    """Smooth ``ab`` over time (see the module docstring for the modes).

    ``strength`` in [0, 1]: 0 = none, towards 1 = stronger (the weight given to a neighbour along a
    trusted path; ``flow`` caps it at 0.95). ``cut_threshold``: :func:`is_cut` sensitivity.
    ``flow`` only: ``lookahead`` frames held back for the two-sided average (default 2;
    0 = causal, lowest latency and cost); ``flow_scale`` the size, relative to the render size, at which flow is computed;
    ``preset`` the DIS preset (``ultrafast`` | ``fast`` | ``medium``).
    Every item must carry ``ab`` ``(2, h, w)`` matching ``L`` ``(h, w)``; ``ValueError`` otherwise.
    """
    if mode not in MODES:
        raise ValueError(f"unknown smoothing mode {mode!r}; known: {', '.join(MODES)}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if mode == "off" or strength <= 0:
        yield from items
    elif mode == "ema":
        yield from _smooth_ema(items, strength, cut_threshold)
    else:
        if lookahead < 0 or not 0.1 <= flow_scale <= 1.0:
            raise ValueError(f"need lookahead >= 0 and flow_scale in [0.1, 1], got {lookahead}, {flow_scale}")
        yield from _FlowSmoother(min(strength, 0.95), cut_threshold, lookahead, flow_scale, preset).run(items)


def motion_ahead(mode: str, strength: float = 0.5, cut_threshold: float = 0.35, **flow_opts) -> FlowMotion | None:
    """The :class:`FlowMotion` to run ahead of ``smooth(items, mode, strength, cut_threshold,
    **flow_opts)`` (same settings), or None when that smoothing needs no flow."""
    if mode != "flow" or strength <= 0:
        return None
    return FlowMotion(cut_threshold, **flow_opts)


def _check(item: FrameItem) -> None:
    if item.ab is None:
        raise ValueError(f"frame {item.index}: no ab to smooth")
    if item.ab.shape != (2,) + item.L.shape:
        raise ValueError(f"frame {item.index}: ab {item.ab.shape} does not match L {item.L.shape}")


def _smooth_ema(items: Iterable[FrameItem], strength: float, cut_threshold: float) -> Iterator[FrameItem]:
    state: np.ndarray | None = None
    prev_L: np.ndarray | None = None
    for item in items:
        _check(item)
        if state is None or is_cut(prev_L, item.L, cut_threshold):
            state = item.ab.astype(np.float32, copy=True)
        else:
            state = strength * state + (1.0 - strength) * item.ab
        prev_L = item.L
        item.ab = state
        yield item


@dataclass
class Motion:
    """What the flow smoother needs of one frame's L alone, so it can be computed ahead of the
    network (the pipeline does it in its flow thread): the uint8 L at flow size, its normalised
    32-bin histogram, whether the frame starts a shot, and the DIS flows to and from the previous
    frame (None at a cut; ``fa`` None without look-ahead). ``key``: the settings it was made with."""

    small: np.ndarray
    hist: np.ndarray
    cut: bool
    fb: np.ndarray | None               # this frame's grid -> previous frame: this(x) ~ prev(x + fb)
    fa: np.ndarray | None               # previous frame's grid -> this frame: prev(x) ~ this(x + fa)
    key: tuple


class FlowMotion:
    """Call on each frame's render-size L, in display order, to get its :class:`Motion` (one or two
    DIS calls). Stateful (it keeps the previous frame), so one instance per film and thread. Items
    given to ``smooth(..., "flow")`` either all carry a Motion from a FlowMotion with the smoother's
    settings, or none do (the smoother then computes them itself)."""

    def __init__(self, cut_threshold: float = 0.35, lookahead: int = 2, flow_scale: float = 0.5,
                 preset: str = "fast"):
        self.cut, self.k, self.scale = cut_threshold, lookahead, flow_scale
        self.key = (float(cut_threshold), int(lookahead), float(flow_scale), preset)
        self.dis = make_dis(preset)
        self._prev: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None  # L shape, small, hist

    def __call__(self, L: np.ndarray) -> Motion:
        h, w = L.shape
        hs, ws = (h, w) if self.scale >= 1.0 else (max(8, round(h * self.scale)), max(8, round(w * self.scale)))
        small = to_u8(L)
        if (hs, ws) != (h, w):
            small = cv2.resize(small, (ws, hs), interpolation=cv2.INTER_AREA)
        hist = cv2.calcHist([small], [0], None, [32], [0, 256]).ravel()
        hist = hist / max(float(hist.sum()), 1.0)
        prev = self._prev
        cut = prev is None or prev[0] != (h, w) or 0.5 * float(np.abs(prev[2] - hist).sum()) > self.cut
        fb = fa = None
        if not cut:
            fb = self.dis.calc(small, prev[1], None)
            fa = self.dis.calc(prev[1], small, None) if self.k > 0 else None
        self._prev = ((h, w), small, hist)
        return Motion(small, hist, cut, fb, fa, self.key)


@dataclass
class _Slot:
    """A frame held by the flow smoother, everything at flow size. Sums are (hs, ws, 3) float32
    channel-last: weighted a, weighted b, total weight. ``own``: the network's ab (downsampled), weight
    1; ``fwd``: sums over this frame and its past; ``to_next``: (map, weight) that pulls the next
    frame's sums onto this frame's grid (None at a cut, the end, or without look-ahead)."""

    item: FrameItem
    own: np.ndarray
    small: np.ndarray                   # uint8 L
    fwd: np.ndarray | None = None
    to_next: tuple[np.ndarray, np.ndarray] | None = None


class _FlowSmoother:
    """Motion-compensated, two-sided weighted average along DIS flow paths (see ``smooth``).

    The averaging runs at flow size (``flow_scale`` x render size): the smoothed low-pass chroma
    replaces the network's low-pass chroma, and the network's finer detail (above the flow size's
    Nyquist limit) is kept as predicted. Per frame, all float32: one DIS call without look-ahead, two
    with it (the second flow also gives the forward-backward check); a uint8 remap + lookup table for
    the brightness confidence; one 3-channel remap per direction; one 2-channel upsample of the
    correction. Backward sums are computed once per block of held frames (up to 2 x lookahead,
    flushed at cuts and at the end)."""

    sigma_L = 12.0  # an L* mismatch of this size along the flow scales the confidence by 1/e

    def __init__(self, strength: float, cut_threshold: float, lookahead: int, flow_scale: float, preset: str):
        self.s, self.k = strength, lookahead
        self.motion = FlowMotion(cut_threshold, lookahead, flow_scale, preset)
        self._grid: np.ndarray | None = None
        self._ones: np.ndarray | None = None
        # confidence from the uint8 brightness mismatch (2.55 codes per L* unit), strength included
        codes = np.arange(256, dtype=np.float32) / np.float32(2.55 * self.sigma_L)
        self._lut = (np.float32(strength) * np.exp(-codes * codes)).astype(np.float32).reshape(1, 256)

    def _link(self, f: np.ndarray, g: np.ndarray | None, src: _Slot, dst: _Slot) -> tuple[np.ndarray, np.ndarray]:
        """``f``: flow from dst's grid into src, ``g``: the opposite flow or None. Returns the remap
        map and the 3-channel weight ``strength x exp(-(L mismatch / sigma_L)^2) [x forward-backward
        consistency when g is given]`` on dst's grid. Pixels whose path leaves the frame get no
        weight: sums are remapped with a zero border, weight channel included."""
        m = cv2.add(f, self._grid)
        d = cv2.remap(src.small, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        wgt = cv2.LUT(cv2.absdiff(d, dst.small), self._lut)
        if g is not None:  # Sundaram et al. 2010: |f + g(x + f)|^2 <= 0.01 (|f|^2 + |g(x + f)|^2) + 0.5
            fx, fy = cv2.split(f)
            bx, by = cv2.split(cv2.remap(g, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            ex, ey = fx + bx, fy + by
            wgt[ex * ex + ey * ey > 0.01 * (fx * fx + fy * fy + bx * bx + by * by) + 0.5] = 0.0
        return m, cv2.merge([wgt, wgt, wgt])

    @staticmethod
    def _pull(sums: np.ndarray, link: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        m, wgt = link
        return cv2.multiply(cv2.remap(sums, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), wgt)

    def _slot(self, item: FrameItem, motion: Motion) -> _Slot:
        h, w = item.L.shape
        hs, ws = motion.small.shape
        ab = item.ab.astype(np.float32, copy=False)
        a, b = ab[0], ab[1]
        if (hs, ws) != (h, w):
            a = cv2.resize(a, (ws, hs), interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, (ws, hs), interpolation=cv2.INTER_AREA)
        if self._ones is None or self._ones.shape != (hs, ws):
            self._ones = np.ones((hs, ws), np.float32)
            gy, gx = np.mgrid[0:hs, 0:ws].astype(np.float32)
            self._grid = cv2.merge([gx, gy])
        return _Slot(item, cv2.merge([a, b, self._ones]), motion.small)

    def run(self, items: Iterable[FrameItem]) -> Iterator[FrameItem]:
        held: list[_Slot] = []
        prev: _Slot | None = None
        for item in items:
            _check(item)
            motion = item.motion
            if motion is None or motion.key != self.motion.key:
                motion = self.motion(item.L)
            item.motion = None  # the flows are used once, here: do not hold them with the item
            slot = self._slot(item, motion)
            if motion.cut:
                slot.fwd = slot.own
                yield from self._flush(held, len(held))
            else:
                fb, fa = motion.fb, motion.fa
                slot.fwd = cv2.add(slot.own, self._pull(prev.fwd, self._link(fb, fa, prev, slot)))
                if fa is not None:
                    prev.to_next = self._link(fa, fb, slot, prev)
            held.append(slot)
            prev = slot
            if len(held) >= max(2 * self.k, 1):
                yield from self._flush(held, len(held) - self.k)
        yield from self._flush(held, len(held))

    def _flush(self, held: list[_Slot], n: int) -> Iterator[FrameItem]:
        """Emit the first ``n`` held frames (all of one shot): forward sums plus backward sums over
        every held frame after them, each frame's own ab counted once."""
        if n <= 0:
            return
        back = held[-1].own
        backs = [back]
        for slot in reversed(held[:-1]):
            back = cv2.add(slot.own, self._pull(back, slot.to_next)) if slot.to_next is not None else slot.own
            backs.append(back)
        backs.reverse()
        for slot, b in zip(held[:n], backs):
            tot = slot.fwd if b is slot.own else cv2.subtract(cv2.add(slot.fwd, b), slot.own)
            if tot is slot.own:
                yield slot.item          # nothing to average with: the prediction stands
                continue
            a, bb, wt = cv2.split(tot)
            oa, ob, _ = cv2.split(slot.own)
            da, db = cv2.subtract(cv2.divide(a, wt), oa), cv2.subtract(cv2.divide(bb, wt), ob)
            ab = slot.item.ab
            h, w = ab.shape[1:]
            if da.shape != (h, w):
                da = cv2.resize(da, (w, h), interpolation=cv2.INTER_LINEAR)
                db = cv2.resize(db, (w, h), interpolation=cv2.INTER_LINEAR)
            slot.item.ab = np.stack([cv2.add(ab[0], da, dtype=cv2.CV_32F), cv2.add(ab[1], db, dtype=cv2.CV_32F)])
            yield slot.item
        del held[:n]


# --- luminance deflicker --------------------------------------------------------------------------
def deflicker(stream: Iterable[Any], *, radius: int = 3, cut_threshold: float = 0.35,
              max_value: float | None = None, max_gain: float = 1.5,
              get: Callable[[Any], np.ndarray] | None = None,
              put: Callable[[Any, np.ndarray], Any] | None = None) -> Iterator[Any]:
    """Even out frame-to-frame brightness pumping (old film flicker) in a stream of luma planes.

    Contract: ``stream`` yields 2-D planes in display order: video Y planes (``uint8``/``uint16``
    code values) or L* arrays (float, [0, 100]). For each plane the mean and standard deviation are
    matched, by a gain and offset, to the temporal median of those statistics over the frames within
    ``radius`` on either side *in the same shot* (a scene cut, detected on the plane's histogram,
    bounds the window, so no brightness crosses a cut). Yields the corrected planes, same count,
    order, shape and dtype (rounded and clipped to ``[0, max_value]``; ``max_value`` defaults to the
    dtype's top for integers and 100 for floats; pass e.g. 1023 for 10-bit video in uint16). The gain
    is limited to [1/max_gain, max_gain]. Holds at most ``radius`` + 1 planes.

    To carry other data along (e.g. whole frames), pass ``get(item) -> plane`` and
    ``put(item, corrected_plane) -> item``: ``stream`` then yields items and so does this function.
    """
    get = get or (lambda x: x)
    put = put or (lambda _x, plane: plane)
    held: deque = deque()        # (item, plane, mean, std, shot)
    history: deque = deque(maxlen=radius)
    prev_norm: np.ndarray | None = None
    shot = 0

    def emit() -> Any:
        item, plane, mean, std, s = held.popleft()
        window = [(m, d) for (_i, _p, m, d, sh) in held if sh == s] + [(m, d) for (m, d, sh) in history if sh == s]
        window.append((mean, std))
        tm = float(np.median([m for m, _ in window]))
        td = float(np.median([d for _, d in window]))
        gain = float(np.clip(td / std, 1.0 / max_gain, max_gain)) if std > 1e-6 else 1.0
        history.append((mean, std, s))
        return put(item, _apply_gain(plane, gain, tm - gain * mean, top))

    top = None
    for item in stream:
        plane = np.asarray(get(item))
        if plane.ndim != 2:
            raise ValueError(f"deflicker needs 2-D luma planes, got shape {plane.shape}")
        if top is None:
            top = float(max_value if max_value is not None else
                        (np.iinfo(plane.dtype).max if np.issubdtype(plane.dtype, np.integer) else 100.0))
        sub = plane[::4, ::4].astype(np.float32)
        mean, std = float(sub.mean()), float(sub.std())
        # cuts are looked for in the standardised plane, so flicker itself (gain/offset) is no cut
        norm = (sub - np.float32(mean)) * np.float32(100.0 / 6.0 / max(std, 1e-6)) + np.float32(50.0)
        if is_cut(prev_norm, norm, cut_threshold):
            shot += 1
        prev_norm = norm
        held.append((item, plane, mean, std, shot))
        while held and (len(held) > radius or held[0][4] != shot):
            yield emit()
    while held:
        yield emit()


def _apply_gain(plane: np.ndarray, gain: float, offset: float, top: float) -> np.ndarray:
    out = plane.astype(np.float32) * np.float32(gain) + np.float32(offset)
    if np.issubdtype(plane.dtype, np.integer):
        return np.clip(np.rint(out), 0, top).astype(plane.dtype)
    return np.clip(out, 0, top).astype(plane.dtype)
