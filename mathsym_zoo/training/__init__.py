"""Training: device planning, callbacks, the fit loop, multi-worker training, warm starts.

The engine reports progress only through the Keras callbacks and the ``log``
function its caller passes in; it never draws on a terminal itself.
"""

from .devices import DeviceInfo, DevicePlan, detect_devices, plan_devices
from .loop import EXTENDABLE, RunResult, check_extension
from .seed_ensemble import resume_run, train_model
from .recipe import class_weights

__all__ = ["DeviceInfo", "DevicePlan", "detect_devices", "plan_devices", "EXTENDABLE", "RunResult",
           "check_extension", "class_weights", "resume_run", "train_model"]
