"""All colour maths of filmcolor: CIE Lab <-> sRGB, network normalisation, and video luma/chroma.

Conventions (checked by the functions that take them):
- RGB is sRGB with values in [0, 1]; Lab is CIE L*a*b* under D65, L in [0, 100], a/b roughly
  in [-110, 110].
- The network sees ``L / 50 - 1`` and predicts ``ab / 110`` through a tanh (pix2pix recipe).
- Torch functions take channel-first tensors ``(..., 3, H, W)`` and work on any device/dtype
  (computed in float32); NumPy functions take channel-last ``(H, W, 3)`` float32 arrays and use
  OpenCV. Both agree to within 0.5 (OpenCV uses lookup tables for the gamma curve; tested).
- Video planes: Y, U, V as unsigned integers of ``bit_depth`` bits, limited ("tv") or full ("pc")
  range, with a BT.601 or BT.709 matrix. A grey pixel (U = V = mid) maps to an sRGB grey of the
  same code value; that is how a B&W film's luma becomes L.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch

L_SCALE, L_SHIFT, AB_SCALE = 50.0, 1.0, 110.0
# D65 white in XYZ, and sRGB <-> XYZ matrices (IEC 61966-2-1).
_WHITE = (0.95047, 1.0, 1.08883)
_RGB2XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_XYZ2RGB = ((3.240479, -1.537150, -0.498535), (-0.969256, 1.875992, 0.041556), (0.055648, -0.204043, 1.057311))
# Luma coefficients (Kr, Kb) per matrix.
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


# --- network normalisation -------------------------------------------------------------------
def normalize_L(L):
    """L in [0, 100] -> [-1, 1]. Works on tensors and arrays."""
    return L / L_SCALE - L_SHIFT


def denormalize_L(Ln):
    return (Ln + L_SHIFT) * L_SCALE


def normalize_ab(ab):
    """ab in [-110, 110] -> [-1, 1] (values beyond are not clipped)."""
    return ab / AB_SCALE


def denormalize_ab(abn):
    return abn * AB_SCALE


# --- torch Lab <-> RGB --------------------------------------------------------------------------
def _check_chw3(t: torch.Tensor, name: str) -> None:
    if t.dim() < 3 or t.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (..., 3, H, W), got {tuple(t.shape)}")


def _matrix(m, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(m, dtype=torch.float32, device=like.device)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], ``(..., 3, H, W)`` -> Lab ``(..., 3, H, W)`` float32 (L in [0, 100])."""
    _check_chw3(rgb, "rgb")
    x = rgb.float().clamp(0, 1)
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = torch.einsum("ij,...jhw->...ihw", _matrix(_RGB2XYZ, x), lin)
    xyz = xyz / torch.tensor(_WHITE, device=x.device).view(3, 1, 1)
    eps = 6.0 / 29.0
    f = torch.where(xyz > eps**3, xyz.clamp_min(1e-12) ** (1.0 / 3.0), xyz / (3 * eps**2) + 4.0 / 29.0)
    L = 116.0 * f[..., 1:2, :, :] - 16.0
    a = 500.0 * (f[..., 0:1, :, :] - f[..., 1:2, :, :])
    b = 200.0 * (f[..., 1:2, :, :] - f[..., 2:3, :, :])
    return torch.cat([L, a, b], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab ``(..., 3, H, W)`` -> sRGB in [0, 1] (out-of-gamut values clipped), float32."""
    _check_chw3(lab, "lab")
    lab = lab.float()
    L, a, b = lab[..., 0:1, :, :], lab[..., 1:2, :, :], lab[..., 2:3, :, :]
    fy = (L + 16.0) / 116.0
    f = torch.cat([fy + a / 500.0, fy, fy - b / 200.0], dim=-3)
    eps = 6.0 / 29.0
    xyz = torch.where(f > eps, f**3, 3 * eps**2 * (f - 4.0 / 29.0))
    xyz = xyz * torch.tensor(_WHITE, device=lab.device).view(3, 1, 1)
    lin = torch.einsum("ij,...jhw->...ihw", _matrix(_XYZ2RGB, lab), xyz).clamp(0, 1)
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * lin).clamp(0, 1)


# --- numpy (OpenCV) Lab <-> RGB -----------------------------------------------------------------
def rgb_to_lab_np(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``(H, W, 3)`` float32 in [0, 1] (or uint8) -> Lab ``(H, W, 3)`` float32."""
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / 255.0
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb_np(lab: np.ndarray) -> np.ndarray:
    """Lab ``(H, W, 3)`` float32 -> sRGB ``(H, W, 3)`` float32 in [0, 1]."""
    return np.clip(cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB), 0, 1)


# --- video planes ---------------------------------------------------------------------------------
def matrix_for(height: int, tag: str | None = None) -> str:
    """The YUV matrix to use: the stream's tag when it names 601/709, else 709 for HD, 601 for SD."""
    t = (tag or "").lower()
    if "709" in t:
        return "bt709"
    if "601" in t or "470" in t or "170m" in t or "smpte170" in t:
        return "bt601"
    return "bt709" if height >= 720 else "bt601"


def _range(bit_depth: int, full_range: bool) -> tuple[float, float, float]:
    """(y_offset, y_span, c_span) in code values for a bit depth and range."""
    scale = float(1 << (bit_depth - 8))
    if full_range:
        top = float((1 << bit_depth) - 1)
        return 0.0, top, top
    return 16.0 * scale, 219.0 * scale, 224.0 * scale


@lru_cache(maxsize=16)
def luma_to_L_lut(bit_depth: int = 8, full_range: bool = False) -> np.ndarray:
    """Lookup table: luma code value -> L* of the sRGB grey with that value. float32, 2**bit_depth."""
    off, span, _ = _range(bit_depth, full_range)
    y = np.clip((np.arange(1 << bit_depth, dtype=np.float64) - off) / span, 0, 1)
    lin = np.where(y > 0.04045, ((y + 0.055) / 1.055) ** 2.4, y / 12.92)
    eps = 6.0 / 29.0
    f = np.where(lin > eps**3, np.cbrt(lin), lin / (3 * eps**2) + 4.0 / 29.0)
    return (116.0 * f - 16.0).astype(np.float32)


def luma_to_L(y: np.ndarray, bit_depth: int = 8, full_range: bool = False) -> np.ndarray:
    """Y plane (uint8/uint16 code values) -> L* float32 of the same shape."""
    return luma_to_L_lut(bit_depth, full_range)[y]


def chroma_codes(r, g, b, matrix: str = "bt601", bit_depth: int = 8, full_range: bool = False):
    """sRGB channels in [0, 1] -> unrounded U, V code values (numpy arrays or torch tensors alike: only
    arithmetic), and the largest code value. Shared by the host and the device compose paths."""
    kr, kb = KR_KB[matrix]
    kg = 1.0 - kr - kb
    y = kr * r + kg * g + kb * b
    pb = (b - y) / (2 * (1 - kb))
    pr = (r - y) / (2 * (1 - kr))
    _, _, c_span = _range(bit_depth, full_range)
    mid = float(1 << (bit_depth - 1))
    return mid + pb * c_span, mid + pr * c_span, float((1 << bit_depth) - 1)


def rgb_to_chroma(rgb: np.ndarray, matrix: str = "bt601", bit_depth: int = 8, full_range: bool = False):
    """sRGB ``(h, w, 3)`` float32 in [0, 1] -> (U, V) code-value planes (uint8 or uint16)."""
    u, v, top = chroma_codes(rgb[..., 0], rgb[..., 1], rgb[..., 2], matrix, bit_depth, full_range)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(np.rint(u), 0, top).astype(dtype), np.clip(np.rint(v), 0, top).astype(dtype)


HUE_CHROMA_MIN = 6.0   # 8-bit U/V codes from neutral below which a pixel's hue is noise, not colour
HUE_APART_DEG = 60.0   # a hue this far from the picture's main hue is a second colour, not a tint


def hue_variety(u: np.ndarray, v: np.ndarray) -> float:
    """Per cent of the pixels of 8-bit U/V planes that carry a colour of their own: chroma at least
    ``HUE_CHROMA_MIN`` codes from neutral, at a hue more than ``HUE_APART_DEG`` from the picture's
    main hue (the chroma-weighted circular mean). A B&W picture and a toned or tinted one (sepia,
    amber, blue: one hue, of any strength) score ~0; colour photos and films score a few per cent and
    up (`scripts/bench_pieces.py --only hue`: the colour clips 3-36%, a grey street scene 0.0-0.3)."""
    a = u.astype(np.float32).ravel() - 128.0
    b = v.astype(np.float32).ravel() - 128.0
    r = np.hypot(a, b)
    keep = r >= HUE_CHROMA_MIN
    if not keep.any():
        return 0.0
    angle = np.arctan2(b[keep], a[keep])
    main = np.arctan2(float((np.sin(angle) * r[keep]).sum()), float((np.cos(angle) * r[keep]).sum()))
    apart = np.abs(np.angle(np.exp(1j * (angle - main))))
    return float(100.0 * np.count_nonzero(apart > np.radians(HUE_APART_DEG)) / r.size)


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str = "bt601", bit_depth: int = 8,
               full_range: bool = False) -> np.ndarray:
    """Full-size Y, U, V code-value planes -> sRGB ``(H, W, 3)`` float32 in [0, 1]."""
    kr, kb = KR_KB[matrix]
    kg = 1.0 - kr - kb
    off, y_span, c_span = _range(bit_depth, full_range)
    mid = float(1 << (bit_depth - 1))
    yy = (y.astype(np.float32) - off) / y_span
    pb = (u.astype(np.float32) - mid) / c_span
    pr = (v.astype(np.float32) - mid) / c_span
    r = yy + 2 * (1 - kr) * pr
    b = yy + 2 * (1 - kb) * pb
    g = (yy - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], axis=-1), 0, 1)


# --- film scans coded as log or linear light -> video levels ----------------------------------------
# Kodak's Cineon conversion (the DPX "printing density" coding of film scanners): 10-bit code 685 is
# diffuse white and 95 black, 0.002 density a code, negative gamma 0.6
CINEON_WHITE, CINEON_BLACK, CINEON_CODES_PER_DECADE = 685, 95, 0.6 / 0.002
CINEON_BLACK_LIGHT = 10.0 ** ((CINEON_BLACK - CINEON_WHITE) / CINEON_CODES_PER_DECADE)  # relative to white
def cineon_to_linear(code: np.ndarray) -> np.ndarray:
    """10-bit Cineon/DPX printing-density code values (float) -> linear light, 0 at the reference
    black and 1 at the reference white (brighter film highlights above 1)."""
    lin = 10.0 ** ((np.asarray(code, dtype=np.float64) - CINEON_WHITE) / CINEON_CODES_PER_DECADE)
    return (lin - CINEON_BLACK_LIGHT) / (1.0 - CINEON_BLACK_LIGHT)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-coded values (IEC 61966-2-1) in [0, 1]; above 1 is clipped."""
    x = np.clip(np.asarray(lin, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def scan_to_video(values: np.ndarray, transfer: str) -> np.ndarray:
    """RGB of a scan coded as ``transfer`` (``"log"``: Cineon code values scaled to [0, 1] from 10
    bits; ``"linear"``: linear light) -> sRGB-coded video levels in [0, 1], as filmcolor's
    colour maths reads video (a grey code value is an sRGB grey)."""
    if transfer not in ("log", "linear"):
        raise ValueError(f"transfer must be 'log' or 'linear', got {transfer!r}")
    lin = cineon_to_linear(np.asarray(values, dtype=np.float64) * 1023.0) if transfer == "log" else values
    return linear_to_srgb(lin)


@lru_cache(maxsize=2)
def scan_to_video_lut16(transfer: str) -> np.ndarray:
    """:func:`scan_to_video` as a table over 16-bit code values (uint16 in, uint16 out)."""
    return np.round(scan_to_video(np.arange(65536) / 65535.0, transfer) * 65535).astype(np.uint16)


def video_to_scan(values: np.ndarray, transfer: str) -> np.ndarray:
    """The inverse of :func:`scan_to_video`: sRGB-coded video levels in [0, 1] -> a scan's coding
    (``"log"``: Cineon code values scaled to [0, 1] from 10 bits, between the reference black 95 and
    white 685; ``"linear"``: linear light in [0, 1])."""
    if transfer not in ("log", "linear"):
        raise ValueError(f"transfer must be 'log' or 'linear', got {transfer!r}")
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    if transfer == "linear":
        return lin
    code = CINEON_WHITE + CINEON_CODES_PER_DECADE * np.log10(lin * (1.0 - CINEON_BLACK_LIGHT) + CINEON_BLACK_LIGHT)
    return code / 1023.0


@lru_cache(maxsize=2)
def video_to_scan_lut16(transfer: str) -> np.ndarray:
    """:func:`video_to_scan` as a table over 16-bit code values (uint16 in, uint16 out)."""
    return np.round(video_to_scan(np.arange(65536) / 65535.0, transfer) * 65535).astype(np.uint16)
