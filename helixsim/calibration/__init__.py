"""Kernel calibration from measured latencies (real silicon).

- :mod:`.fit`: fit a system's tables (:func:`fit_calibration`), save/load them.
- :mod:`.stored`: :class:`Calibration` and its binary copy ``calibration.npz`` (fast loading).
- :mod:`.kernels`: :class:`CalibratedKernels`, the calibrated kernel model.
- :mod:`.validate`: prediction errors and the holdout protocol.
- :mod:`.build`: ``python -m helixsim.calibration.build`` regenerates the
  shipped tables in ``hardware/calibration/``.

The names below are imported on first use: fitting needs pandas and scipy, pricing
a point with a shipped calibration needs neither.
"""

from importlib import import_module

_WHERE = {"Calibration": ".stored", "builtin_calibration_path": ".stored", "fit_calibration": ".fit",
          "load_calibration": ".fit", "save_calibration": ".fit", "CalibratedKernels": ".kernels",
          "calibrated_kernels": ".kernels"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)
