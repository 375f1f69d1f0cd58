"""Kernel calibration from measured latencies (real silicon).

- :mod:`.fit`: fit a system's tables (:func:`fit_calibration`), save/load them.
- :mod:`.kernels`: :class:`CalibratedKernels`, the calibrated kernel model.
- :mod:`.validate`: prediction errors and the holdout protocol.
- :mod:`.build`: ``python -m helixsim.calibration.build`` regenerates the
  shipped tables in ``hardware/calibration/``.
"""

from .fit import Calibration, builtin_calibration_path, fit_calibration, load_calibration, save_calibration
from .kernels import CalibratedKernels, calibrated_kernels

__all__ = ["Calibration", "CalibratedKernels", "builtin_calibration_path", "calibrated_kernels", "fit_calibration",
           "load_calibration", "save_calibration"]
