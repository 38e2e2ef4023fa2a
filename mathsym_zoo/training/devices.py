"""Devices and distribution strategy: what the machine offers and how a run uses it.

:func:`detect_devices` is the only function that asks TensorFlow about the
machine; :func:`plan_devices` is pure, so every plan is testable without a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ..errors import ConfigError
from ..registry import TrainConfig


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What the machine offers (from :func:`detect_devices`; tests build it by hand)."""

    gpus: tuple[str, ...] = ()
    cpus: int = 1


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    """How a run uses the machine: the strategy, its devices, mixed precision and XLA."""

    strategy: str  # "default" | "one-device" | "mirrored" | "multi-worker"
    devices: tuple[str, ...]
    use_gpu: bool
    mixed_precision: bool
    jit_compile: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def detect_devices() -> DeviceInfo:
    """The GPUs TensorFlow sees and the CPU count: the one place that asks the machine."""
    import tensorflow as tf

    gpus = tuple(d.name for d in tf.config.list_physical_devices("GPU"))
    return DeviceInfo(gpus=gpus, cpus=os.cpu_count() or 1)


def plan_devices(cfg: TrainConfig, info: DeviceInfo, tf_config: str | None = None) -> DevicePlan:
    """Choose strategy, devices, mixed precision and XLA from ``[train]`` and the machine.

    ``auto`` strategy: the default (single-device) strategy, or MirroredStrategy when
    there are several GPUs. ``auto`` mixed precision / XLA: on when training on GPU.
    """
    if cfg.device == "gpu" and not info.gpus:
        raise ConfigError("train.device = 'gpu' but TensorFlow sees no GPU; install the GPU build "
                          "(pip install 'mathsym-zoo[gpu]') or use --set train.device=auto")
    use_gpu = bool(info.gpus) and cfg.device != "cpu"
    gpu_names = tuple(f"/gpu:{i}" for i in range(len(info.gpus)))
    devices = gpu_names if use_gpu else ("/cpu:0",)
    if cfg.strategy == "multi-worker":
        if not tf_config:
            raise ConfigError("train.strategy = 'multi-worker' needs the TF_CONFIG environment variable "
                              "(cluster and task of this worker); see TensorFlow's MultiWorkerMirroredStrategy")
        try:
            json.loads(tf_config)
        except ValueError:
            raise ConfigError(f"TF_CONFIG is not valid JSON: {tf_config[:80]!r}") from None
        strategy = "multi-worker"
    elif cfg.strategy == "mirrored":
        strategy = "mirrored"
    elif cfg.strategy == "one-device":
        strategy, devices = "one-device", devices[:1]
    elif use_gpu and len(gpu_names) > 1:
        strategy = "mirrored"
    elif info.gpus and not use_gpu:
        strategy = "one-device"  # pin to the CPU although a GPU is visible
    else:
        strategy, devices = "default", devices[:1]
    mixed = cfg.mixed_precision == "on" or (cfg.mixed_precision == "auto" and use_gpu)
    xla = cfg.xla == "on" or (cfg.xla == "auto" and use_gpu)
    return DevicePlan(strategy=strategy, devices=devices, use_gpu=use_gpu, mixed_precision=mixed, jit_compile=xla)


def make_strategy(plan: DevicePlan):
    """The tf.distribute strategy of a plan (create it before other TensorFlow work)."""
    import tensorflow as tf

    if plan.strategy == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if plan.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(plan.devices))
    if plan.strategy == "one-device":
        return tf.distribute.OneDeviceStrategy(plan.devices[0])
    return tf.distribute.get_strategy()


def is_chief(plan: DevicePlan) -> bool:
    """Only the chief writes the run folder in multi-worker training (TensorFlow's convention)."""
    if plan.strategy != "multi-worker":
        return True
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0
