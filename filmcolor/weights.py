"""Self-describing generator weights (safetensors + metadata) and the model registry.

A weights file holds the generator's state dict and, in the safetensors metadata, everything
needed to rebuild it: ``format``, ``arch``, ``arch_args`` (JSON), ``normalisation`` and a model
``card`` (JSON: data, steps, wall time, hardware, validation metrics). Loading never unpickles.

Names resolve in this order: an existing file path; a packaged model (``default``); a user model in
``models_dir()`` (genre models from ``filmcolor finetune``). Unknown names raise ``ModelError``
listing the names that exist.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import ModelError
from .model import build_generator

FORMAT = "filmcolor.generator/1"
NORMALISATION = "L/50-1, ab/110, tanh"
PACKAGED_DIR = Path(__file__).parent / "models"
SUFFIX = ".safetensors"


@dataclass(frozen=True)
class ModelInfo:
    """What a weights file says about itself."""

    name: str
    path: Path
    source: str  # "packaged", "user" or "file"
    arch: str
    arch_args: dict[str, Any]
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def models_dir() -> Path:
    """User models folder: ``$FILMCOLOR_HOME/models``, else ``$XDG_DATA_HOME/filmcolor/models``."""
    home = os.environ.get("FILMCOLOR_HOME")
    if home:
        return Path(home).expanduser() / "models"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "filmcolor" / "models"


def save_generator(model: nn.Module, path: str | Path, arch: str, arch_args: dict[str, Any],
                   card: dict[str, Any] | None = None, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``model``'s state dict (floats cast to ``dtype``) with its metadata, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "arch": arch, "arch_args": json.dumps(arch_args, sort_keys=True),
            "normalisation": NORMALISATION, "card": json.dumps(card or {}, sort_keys=True)}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_info(path: str | Path, name: str | None = None, source: str = "file") -> ModelInfo:
    """Read a weights file's metadata without loading its tensors."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise ModelError(path, f"not a readable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ModelError(path, f"not a filmcolor generator (format {meta.get('format')!r}, expected {FORMAT!r})")
    return ModelInfo(name=name or path.stem, path=path, source=source, arch=meta["arch"],
                     arch_args=json.loads(meta["arch_args"]), card=json.loads(meta.get("card", "{}")))


def available_models(unreadable: dict[str, ModelError] | None = None) -> dict[str, ModelInfo]:
    """Packaged and user models by name; a user model never shadows a packaged one. Files that
    cannot be read as models are left out, and put in ``unreadable`` (name -> error) when given."""
    found: dict[str, ModelInfo] = {}
    for source, folder in (("user", models_dir()), ("packaged", PACKAGED_DIR)):
        if folder.is_dir():
            for p in sorted(folder.glob(f"*{SUFFIX}")):
                try:
                    found[p.stem] = read_info(p, p.stem, source)
                    if unreadable is not None:
                        unreadable.pop(p.stem, None)
                except ModelError as exc:
                    if unreadable is not None and p.stem not in found:
                        unreadable[p.stem] = exc
    return found


def resolve_model(name_or_path: str | Path) -> ModelInfo:
    """A path to a weights file, or the name of a packaged or user model -> its ``ModelInfo``."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.suffix == SUFFIX or os.sep in text or candidate.is_file():
        if not candidate.is_file():
            raise ModelError(candidate, "no such model file")
        return read_info(candidate)
    unreadable: dict[str, ModelError] = {}
    models = available_models(unreadable)
    if text not in models and text in unreadable:
        raise unreadable[text]  # the file is there: say what is wrong with it, not that it is unknown
    if text not in models:
        names = ", ".join(sorted(models)) or "none"
        raise ModelError(None, f"unknown model {text!r}; available: {names} (user models live in {models_dir()})")
    return models[text]


def load_generator(name_or_path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Build the generator a weights file describes, load it in float32, eval mode, on ``device``."""
    info = resolve_model(name_or_path)
    model = build_generator(info.arch, **info.arch_args)
    with safe_open(str(info.path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(info.path, f"weights do not match {info.arch}({info.arch_args}): {exc}") from exc
    return model.to(device).eval(), info
