"""Find built-in spec files by name, in a source checkout or an installed wheel.

In the repository the data live at the top level (``hardware/``,
``models/``, ``sweeps/``); ``pip install .`` copies them into the package
as ``helixsim/_data/<kind>/`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..efficiency import Efficiency, load_efficiency_file
from ..errors import SpecError, closest
from ..safe_io import short
from .hardware import HardwareSpec, load_hardware_file
from .hf import load_hf_config
from .model import ModelSpec, load_model_file

_PACKAGE = Path(__file__).resolve().parent.parent


def data_dir(kind: str) -> Path:
    """Directory of built-in ``hardware``, ``models`` or ``sweeps`` files."""
    installed = _PACKAGE / "_data" / kind
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / kind


def builtin_names(kind: str) -> list[str]:
    return sorted(p.stem for p in data_dir(kind).glob("*.yaml"))


def _looks_like_path(value: str) -> bool:
    return "/" in value or value.endswith((".yaml", ".yml", ".json"))


@lru_cache(maxsize=64)
def load_hardware(name_or_path: str) -> HardwareSpec:
    """A built-in system by name (``gb200-nvl72``) or a hardware YAML path."""
    if _looks_like_path(name_or_path):
        return load_hardware_file(Path(name_or_path))
    path = data_dir("hardware") / f"{name_or_path}.yaml"
    if not path.is_file():
        names = builtin_names("hardware")
        raise SpecError("--hardware", "", f"unknown hardware '{short(name_or_path)}'{closest(name_or_path[:200], names)}; known: {', '.join(names)}")
    return load_hardware_file(path)


@lru_cache(maxsize=64)
def load_model(name_or_path: str) -> ModelSpec:
    """A built-in model by name, a model YAML path, or a Hugging Face config.json path."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path)
        if path.suffix == ".json":
            return load_hf_config(path)
        return load_model_file(path)
    path = data_dir("models") / f"{name_or_path}.yaml"
    if not path.is_file():
        names = builtin_names("models")
        raise SpecError("--model", "", f"unknown model '{short(name_or_path)}'{closest(name_or_path[:200], names)}; known: {', '.join(names)}")
    return load_model_file(path)


@lru_cache(maxsize=64)
def load_efficiency(hardware_name: str) -> Efficiency:
    """Default efficiency constants, or the per-system override file where one exists."""
    folder = data_dir("hardware") / "efficiency"
    specific = folder / f"{hardware_name}.yaml"
    return load_efficiency_file(specific if specific.is_file() else folder / "default.yaml")
