"""Training jobs: devices and strategy, callbacks, checkpoints, resume, run folders.

A run folder (see docs/ARCHITECTURE.md)::

    <runs_dir>/<model>-<YYYYmmdd-HHMMSS>/
      run.json  history.csv  tb/  best.keras  last.keras  metrics.json  state/

Resume works from ``state/state.json``, the commit point written after each
completed epoch: it names the full-model checkpoint of that epoch (weights and
optimizer state), the epoch count, the early-stopping and LR-plateau counters
and the whole history. A process killed mid-epoch loses only that epoch; the
reshuffle order of epoch k is a pure function of (seed, k) either way.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, ZooError
from .fileio import atomic_write_bytes as _write_atomic
from .registry import Job, TrainConfig

RUN_FORMAT = 1
STATE_DIR = "state"
MONITOR = "val_loss"  # lower is better; the best checkpoint and early stopping follow it


# -- devices and strategy ------------------------------------------------------


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


def _is_chief(plan: DevicePlan) -> bool:
    """Only the chief writes the run folder in multi-worker training (TensorFlow's convention)."""
    if plan.strategy != "multi-worker":
        return True
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


# -- small file helpers --------------------------------------------------------


def _write_json(path: Path, obj: Any) -> None:
    _write_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def _save_model_atomic(model, path: Path) -> None:
    """``model.save`` to a temporary name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _publish(run_dir: Path, state: dict[str, Any]) -> None:
    """Derive last.keras, best.keras and history.csv from the committed state (idempotent,
    so a resume after a kill between commit and publish repairs them)."""
    ckpt = run_dir / STATE_DIR / state["checkpoint"]
    _copy_atomic(ckpt, run_dir / "last.keras")
    if state.get("best_epoch") == state["epochs_done"]:
        _copy_atomic(ckpt, run_dir / "best.keras")
    _write_atomic(run_dir / "history.csv", _history_csv(state["history"]))


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist in ("mathsym-zoo", "tensorflow", "tensorflow-cpu", "keras", "numpy", "pluggy", "pydantic"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# -- results -------------------------------------------------------------------


@dataclasses.dataclass
class RunResult:
    """What :func:`train_model` returns; everything is also in the run folder."""

    run_dir: Path
    status: str  # "completed" | "early-stopped"
    epochs: int
    best_epoch: int | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    split_hash: str
    model: Any = dataclasses.field(default=None, repr=False)  # the trained keras.Model, best weights

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.keras"

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.keras"


HISTORY_FIELDS_FIRST = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "images_per_second")


def _history_csv(history: list[dict[str, Any]]) -> str:
    keys = list(HISTORY_FIELDS_FIRST)
    for row in history:
        keys += [k for k in row if k not in keys]
    keys = [k for k in keys if any(k in r for r in history)] or list(HISTORY_FIELDS_FIRST)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buf.getvalue()


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's history.csv, numbers parsed."""
    rows = []
    with open(Path(run_dir) / "history.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows.append({k: (int(v) if k == "epoch" else float(v)) if v not in ("", None) else None
                         for k, v in row.items()})
    return rows


# -- callbacks -----------------------------------------------------------------


def _make_callbacks_module():
    """Keras callbacks, defined lazily so importing this module does not import TensorFlow."""
    import keras

    class RunKeeper(keras.callbacks.Callback):
        """Resumable early stopping, best-only checkpointing, last checkpoint, history and state.

        Does what ``EarlyStopping(restore_best_weights=True)`` and
        ``ModelCheckpoint(save_best_only=True)`` do, with their counters persisted
        in ``state/state.json`` so a resumed run behaves like an uninterrupted one.
        """

        def __init__(self, run_dir: Path, state: dict[str, Any], *, patience: int, seed: int,
                     images_per_epoch: int, plateau=None, write: bool = True):
            super().__init__()
            self.run_dir = run_dir
            self.state = state
            self.patience = patience
            self.seed = seed
            self.images_per_epoch = images_per_epoch
            self.plateau = plateau
            self.write = write
            self.best_weights = None
            self._t0 = self._t_train = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            # Global RNG of epoch k derived from (seed, k): same whether resumed or not.
            keras.utils.set_random_seed((self.seed * 1_000_003 + epoch) % (2**31))
            self._t0 = self._t_train = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self._t_train = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._t0
            train_phase = max(self._t_train - self._t0, 1e-9)  # without validation
            logs = dict(logs or {})
            row: dict[str, Any] = {"epoch": epoch + 1}
            for k, v in logs.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    continue
            try:
                row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            except Exception:  # schedules: report the value at the current step
                pass
            row["seconds"] = round(seconds, 3)
            row["images_per_second"] = round(self.images_per_epoch / train_phase, 1)
            st = self.state
            current = row.get(MONITOR)
            improved = current is not None and (st["best"] is None or current < st["best"])
            if improved:
                st["best"], st["best_epoch"], st["wait"] = current, epoch + 1, 0
                self.best_weights = self.model.get_weights()
            else:
                st["wait"] += 1
            st["history"].append(row)
            st["epochs_done"] = epoch + 1
            st["train_seconds"] = st.get("train_seconds", 0.0) + seconds
            st["train_phase_seconds"] = st.get("train_phase_seconds", 0.0) + train_phase
            st["train_images"] = st.get("train_images", 0) + self.images_per_epoch
            if self.plateau is not None:
                st["plateau"] = {"wait": int(self.plateau.wait), "best": float(self.plateau.best),
                                 "cooldown_counter": int(self.plateau.cooldown_counter)}
            if self.patience and st["wait"] >= self.patience:
                st["stopped_early"] = True
                self.model.stop_training = True
            if self.write:
                # Order matters: the checkpoint first, then the commit point, then derived files.
                ckpt = self.run_dir / STATE_DIR / f"epoch-{epoch + 1:04d}.keras"
                _save_model_atomic(self.model, ckpt)
                st["checkpoint"] = ckpt.name
                _write_json(self.run_dir / STATE_DIR / "state.json", st)
                for old in (self.run_dir / STATE_DIR).glob("epoch-*.keras"):
                    if old.name != ckpt.name:
                        old.unlink(missing_ok=True)
                _publish(self.run_dir, st)

    class Progress(keras.callbacks.Callback):
        """A rich live bar per epoch (batches, images/s, loss, accuracy, ETA), or plain log lines."""

        def __init__(self, console, *, steps: int, batch_size: int, epochs: int, live: bool):
            super().__init__()
            self.console = console
            self.steps = steps
            self.batch_size = batch_size
            self.epochs = epochs
            self.live = live
            self.rows: list[dict[str, Any]] = []
            self._progress = None
            self._task = None
            self._t0 = 0.0
            self._last = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = self._last = time.perf_counter()
            self._epoch = epoch
            if not self.live:
                return
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(
                TextColumn(f"epoch {epoch + 1}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7} img/s"), TextColumn("loss {task.fields[loss]}"),
                TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.steps, rate="-", loss="-", acc="-")

        def on_train_batch_end(self, batch, logs=None):
            if self._progress is None:
                return
            now = time.perf_counter()
            if now - self._last < 0.2 and batch + 1 < self.steps:
                return
            self._last = now
            logs = logs or {}
            rate = (batch + 1) * self.batch_size / max(now - self._t0, 1e-9)
            self._progress.update(self._task, completed=batch + 1, rate=f"{rate:,.0f}",
                                  loss=_fmt(logs.get("loss")), acc=_fmt(logs.get("accuracy")))

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._t0
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
            logs = logs or {}
            row = {"epoch": epoch + 1, "seconds": seconds, **{k: logs.get(k) for k in
                                                                ("loss", "accuracy", "val_loss", "val_accuracy")}}
            self.rows.append(row)
            rate = self.steps * self.batch_size / max(seconds, 1e-9)
            line = (f"epoch {epoch + 1}/{self.epochs}  loss {_fmt(row['loss'])}  acc {_fmt(row['accuracy'])}  "
                    f"val_loss {_fmt(row['val_loss'])}  val_acc {_fmt(row['val_accuracy'])}  "
                    f"{seconds:.1f}s  {rate:,.0f} img/s")
            if self.live:
                self.console.print(line, highlight=False)
            else:
                print(line, file=self.console.file if self.console is not None else sys.stdout, flush=True)

        def table(self):
            from rich.table import Table

            table = Table(title="epochs")
            for col in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
                table.add_column(col, justify="right")
            for r in self.rows:
                table.add_row(str(r["epoch"]), _fmt(r["loss"]), _fmt(r["accuracy"]), _fmt(r["val_loss"]),
                              _fmt(r["val_accuracy"]), f"{r['seconds']:.1f}")
            return table

    class EpochScalars(keras.callbacks.Callback):
        """Per-epoch TensorBoard scalars (``tb/train``, ``tb/validation``), written with TensorFlow's
        own summary ops so they need no ``tensorboard`` package at training time."""

        def __init__(self, log_dir: Path):
            super().__init__()
            self.log_dir = log_dir
            self._writers: dict[str, Any] = {}

        def _writer(self, name: str):
            import tensorflow as tf

            if name not in self._writers:
                self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
            return self._writers[name]

        def on_epoch_end(self, epoch, logs=None):
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2

            meta = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
            for key, value in (logs or {}).items():
                side, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                with self._writer(side).as_default():
                    tf.summary.write(f"epoch_{tag}", tf.constant(value, tf.float32), step=epoch + 1, metadata=meta)
            for w in self._writers.values():
                w.flush()

        def on_train_end(self, logs=None):
            for w in self._writers.values():
                w.close()

    class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
        """ReduceLROnPlateau whose counters survive a resume."""

        def __init__(self, restored: dict[str, Any] | None = None, **kwargs):
            super().__init__(**kwargs)
            self.restored = restored

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            for k, v in (self.restored or {}).items():
                setattr(self, k, v)

    return RunKeeper, Progress, ResumablePlateau, EpochScalars


def _fmt(v) -> str:
    try:
        return f"{float(v):.4f}"
    except (TypeError, ValueError):
        return "-"


# -- the training job ----------------------------------------------------------


def _new_run_dir(runs_dir: Path, model_name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = runs_dir / f"{model_name}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def _optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr: Any = cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(1, cfg.epochs * steps_per_epoch))
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr, weight_decay=cfg.weight_decay or None)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay or 0.004)
    return keras.optimizers.SGD(lr, momentum=0.9, weight_decay=cfg.weight_decay or None)


def _class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Inverse class frequency, normalised so a balanced set gets weight 1."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def _load_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE_DIR / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ZooError(f"{path}: unreadable resume state ({exc})") from None


def train_model(job: Job, model_name: str, *, run_dir: str | Path | None = None, resume: bool = False,
                progress: bool = True, console=None, dataset=None) -> RunResult:
    """Train one model of the job and write its run folder; ``resume=True`` continues ``run_dir``.

    ``dataset`` skips :func:`mathsym_zoo.data.cache.load_dataset` (tests, API users).
    ``progress`` shows rich live bars on a terminal ``console``; otherwise one log line per epoch.
    """
    cfg = job.train
    entry = job.model(model_name)
    plan = plan_devices(cfg, detect_devices(), os.environ.get("TF_CONFIG"))
    strategy = make_strategy(plan)  # before other TensorFlow work (multi-worker needs that)

    import keras

    from .data.pipeline import ArrayPipeline, build_online_layers, steps_for, wrap_model
    from .data.split import load_split

    if console is None:
        from rich.console import Console

        console = Console(stderr=False)
    live = bool(progress) and console.is_terminal
    chief = _is_chief(plan)

    # -- run folder ------------------------------------------------------------
    state: dict[str, Any] | None = None
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run folder: --resume RUN_DIR")
        run_dir = Path(run_dir)
        if not (run_dir / "run.json").is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no run.json); pass the folder `train` printed")
        state = _load_state(run_dir)
    else:
        run_dir = Path(run_dir) if run_dir is not None else _new_run_dir(job.runs_dir, entry.name)
        if (run_dir / "run.json").exists():
            raise ConfigError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or pick a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)

    if dataset is None:
        from .data.cache import load_dataset

        dataset = load_dataset(job, progress=progress)
    split = load_split(dataset, job.split)
    if len(split.indices["train"]) == 0:
        raise ZooError("the split has no training images; check the source and [split]")
    if len(split.indices["val"]) == 0:
        raise ConfigError("the split has no validation images (split.val = 0 or too little data); "
                          "early stopping and the best checkpoint need them")

    run_json_path = run_dir / "run.json"
    if resume:
        run_info = json.loads(run_json_path.read_text(encoding="utf-8"))
        if run_info.get("split", {}).get("hash") != split.hash:
            raise ZooError(f"cannot resume {run_dir}: its split hash {run_info.get('split', {}).get('hash', '?')[:12]} "
                           f"differs from the current one {split.hash[:12]}; the data or [split] changed")
        run_info["resumed"] = int(run_info.get("resumed", 0)) + 1
        run_info["job"] = job.to_dict()  # e.g. more epochs than first planned
    else:
        run_info = {
            "format": RUN_FORMAT,
            "model": entry.to_dict(),
            "job": job.to_dict(),
            "split": {"hash": split.hash, "path": str(split.path) if split.path else None,
                      "sizes": split.sizes(), "config": split.config},
            "source": dataset.source,
            "dataset_key": dataset.key,
            "class_names": list(dataset.class_names),
            "preprocessing": dataset.preprocessing,
            "input_shape": list(dataset.input_shape),
            "label_smoothing": cfg.label_smoothing,
            "versions": _versions(),
            "git_revision": _git_revision(job.root),
            "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "resumed": 0,
        }
    run_info.update(status="running", devices=plan.to_dict(), pid=os.getpid())
    if chief:
        _write_json(run_json_path, run_info)

    if state is not None and (state.get("epochs_done", 0) >= cfg.epochs or state.get("stopped_early")):
        console.print(f"{run_dir}: already finished ({state['epochs_done']} epochs); evaluating the best checkpoint")

    # -- model -----------------------------------------------------------------
    keras.utils.set_random_seed(cfg.seed)
    previous_policy = keras.mixed_precision.global_policy().name
    if plan.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        batch_size = cfg.batch_size
        replicas = strategy.num_replicas_in_sync
        n_train = len(split.indices["train"])
        # Several replicas need identical step counts; and a tiny last batch skews
        # BatchNorm's moving statistics (seen: resnet-lite collapsing in inference
        # mode). The per-epoch reshuffle still shows every image over the epochs.
        drop = replicas > 1 or n_train >= 2 * batch_size
        steps = steps_for(n_train, batch_size, drop)
        if steps == 0:
            raise ConfigError(f"train.batch_size = {batch_size} exceeds the {n_train} training images")
        with strategy.scope():
            arch = entry.component.factory(entry.params, dataset.input_shape, dataset.num_classes)
            model = wrap_model(arch, dataset.input_shape, build_online_layers(job), name=entry.name)
            if cfg.label_smoothing > 0:
                loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
            else:
                loss = keras.losses.SparseCategoricalCrossentropy()
            model.compile(optimizer=_optimizer(cfg, steps), loss=loss, metrics=["accuracy"],
                          jit_compile=plan.jit_compile)
            if state is not None and state.get("checkpoint"):
                model.optimizer.build(model.trainable_variables)
                model.load_weights(run_dir / STATE_DIR / state["checkpoint"])
                if chief:
                    _publish(run_dir, state)

        if state is None:
            state = {"epochs_done": 0, "best": None, "best_epoch": None, "wait": 0, "history": [],
                     "train_seconds": 0.0, "seed": cfg.seed,
                     "shuffle_seed": "stateless_shuffle(seed=[train.seed, epoch])"}
        initial_epoch = int(state["epochs_done"])

        pipe = ArrayPipeline(dataset.images, dataset.labels, dataset.num_classes, one_hot=cfg.label_smoothing > 0)
        shard = plan.strategy == "multi-worker"
        val_ds = pipe.eval(split.indices["val"], batch_size=batch_size, shard_data=shard)
        test_ds = pipe.eval(split.indices["test"], batch_size=batch_size, shard_data=shard) \
            if len(split.indices["test"]) else None

        RunKeeper, Progress, ResumablePlateau, EpochScalars = _make_callbacks_module()
        plateau = None
        callbacks: list = []
        if cfg.lr_schedule == "plateau":
            plateau = ResumablePlateau(state.get("plateau"), monitor=MONITOR, factor=0.5,
                                       patience=max(1, cfg.early_stopping_patience // 2))
            callbacks.append(plateau)
        keeper = RunKeeper(run_dir, state, patience=cfg.early_stopping_patience, seed=cfg.seed,
                           images_per_epoch=steps * batch_size if drop else n_train, plateau=plateau, write=chief)
        callbacks.append(keeper)
        if chief:
            callbacks.append(EpochScalars(run_dir / "tb"))
        reporter = Progress(console, steps=steps, batch_size=batch_size, epochs=cfg.epochs, live=live)
        callbacks.append(reporter)

        loop = None
        if plan.strategy == "multi-worker":
            _build_for_multi_worker(model, pipe, split.indices["train"][:batch_size], strategy)
            loop = _MultiWorkerLoop(model, strategy)

        finished = state.get("stopped_early") or initial_epoch >= cfg.epochs
        if not finished:
            train_ds = pipe.train(split.indices["train"], batch_size=batch_size, seed=cfg.seed,
                                  epochs=cfg.epochs, initial_epoch=initial_epoch, drop_remainder=drop,
                                  shard_data=shard)
            class_weight = _class_weights(np.asarray(dataset.labels)[split.indices["train"]], dataset.num_classes) \
                if cfg.class_weights else None
            if progress is False or not live:
                print(f"training {entry.name} on {n_train} images ({steps} steps/epoch, batch {batch_size}), "
                      f"epochs {initial_epoch + 1}..{cfg.epochs}, strategy {plan.strategy} on "
                      f"{','.join(plan.devices)}, mixed precision {'on' if plan.mixed_precision else 'off'}, "
                      f"XLA {'on' if plan.jit_compile else 'off'} -> {run_dir}", file=console.file, flush=True)
            fit = loop.fit if loop is not None else functools.partial(model.fit, shuffle=False, verbose=0)
            fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
                steps_per_epoch=steps, class_weight=class_weight, callbacks=callbacks)
            if live and reporter.rows:
                console.print(reporter.table())

        # -- best weights, final metrics ----------------------------------------
        if keeper.best_weights is not None:
            model.set_weights(keeper.best_weights)
        elif (run_dir / "best.keras").is_file():
            model.load_weights(run_dir / "best.keras")
        metrics: dict[str, Any] = {}
        for side, ds in (("val", val_ds), ("test", test_ds)):
            if ds is None:
                continue
            values = loop.evaluate(ds) if loop is not None else model.evaluate(ds, verbose=0, return_dict=True)
            metrics[side] = {"loss": float(values["loss"]), "accuracy": float(values["accuracy"]),
                             "images": int(len(split.indices[side]))}
        hist = state["history"]
        train_seconds = float(state.get("train_seconds", 0.0))
        metrics.update({
            "epochs": int(state["epochs_done"]),
            "best_epoch": state.get("best_epoch"),
            "stopped_early": bool(state.get("stopped_early")),
            "train_seconds": round(train_seconds, 3),
            "seconds_per_epoch": round(train_seconds / max(1, len(hist)), 3),
            "train_images_per_second": round(state.get("train_images", 0) / state["train_phase_seconds"], 1)
            if state.get("train_phase_seconds") else None,
            "split_hash": split.hash,
        })
        status = "early-stopped" if state.get("stopped_early") else "completed"
        if chief:
            _write_json(run_dir / "metrics.json", metrics)
            if not (run_dir / "last.keras").exists():
                _save_model_atomic(model, run_dir / "last.keras")
            run_info.update(status=status, finished=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))
            run_info.pop("pid", None)
            _write_json(run_json_path, run_info)
        if live or progress:
            acc = metrics.get("test", metrics.get("val", {})).get("accuracy")
            console.print(f"{entry.name}: {status} after {metrics['epochs']} epochs, "
                          f"{'test' if 'test' in metrics else 'val'} accuracy {_fmt(acc)} -> {run_dir}",
                          highlight=False)
        return RunResult(run_dir=run_dir, status=status, epochs=int(state["epochs_done"]),
                         best_epoch=state.get("best_epoch"), metrics=metrics, history=list(hist),
                         split_hash=split.hash, model=model)
    except BaseException:
        if chief and run_json_path.exists():
            try:
                info = json.loads(run_json_path.read_text(encoding="utf-8"))
                info["status"] = "interrupted"
                _write_json(run_json_path, info)
            except (OSError, ValueError):
                pass
        raise
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _build_for_multi_worker(model, pipe, indices, strategy) -> None:
    """Create the compiled loss and metric variables from one local batch, under the
    strategy, before any step is traced in replica context."""
    x, y = next(iter(pipe.eval(indices, batch_size=len(indices))))
    with strategy.scope():
        model._symbolic_build(data_batch=(x, y, None))


class _MultiWorkerLoop:
    """``fit``/``evaluate`` for MultiWorkerMirroredStrategy.

    Keras 3's own loops reduce per-replica scalar logs with ``axis=0``, which the
    collective strategy rejects (keras-team/keras#20585), so multi-worker runs step
    ``model.train_step``/``test_step`` under ``strategy.run`` here and average the
    logs across workers; gradients are all-reduced by the Keras optimizer as in ``fit``.
    Callbacks see the same hooks and logs as with ``fit``.
    """

    def __init__(self, model, strategy):
        import tensorflow as tf

        self.model, self.strategy = model, strategy

        def reduce(logs):
            return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

        self._train = tf.function(lambda batch: reduce(strategy.run(model.train_step, args=(batch,))))
        self._test = tf.function(lambda batch: reduce(strategy.run(model.test_step, args=(batch,))))

    def evaluate(self, ds) -> dict[str, float]:
        self.model.reset_metrics()
        logs: dict[str, Any] = {}
        for batch in self.strategy.experimental_distribute_dataset(ds):
            logs = self._test(batch)
        return {k: float(v) for k, v in logs.items()}

    def fit(self, train_ds, *, validation_data, epochs: int, initial_epoch: int, steps_per_epoch: int,
            callbacks, class_weight=None) -> None:
        import keras
        import tensorflow as tf

        if class_weight:
            table = tf.constant([class_weight[i] for i in range(len(class_weight))], tf.float32)

            def with_weights(x, y):
                ids = tf.argmax(y, axis=-1, output_type=tf.int32) if y.shape.rank > 1 else y
                return x, y, tf.gather(table, ids)

            train_ds = train_ds.map(with_weights)
        model = self.model
        cbs = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs, steps=steps_per_epoch)
        iterator = iter(self.strategy.experimental_distribute_dataset(train_ds))
        model.stop_training = False
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            cbs.on_epoch_begin(epoch)
            logs: dict[str, Any] = {}
            for step in range(steps_per_epoch):
                cbs.on_train_batch_begin(step)
                logs = self._train(next(iterator))
                cbs.on_train_batch_end(step, logs)
            epoch_logs = {k: float(v) for k, v in logs.items()}
            epoch_logs.update({f"val_{k}": v for k, v in self.evaluate(validation_data).items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
        cbs.on_train_end()


def job_from_run(run_dir: str | Path, *, plugins=None) -> Job:
    """Re-resolve the job recorded in a run folder's run.json."""
    from .registry import read_toml, resolve

    run_dir = Path(run_dir)
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    j = info["job"]
    raw: dict[str, Any] = {
        "data": {"source": j["source"]["name"], "cache_dir": j["cache_dir"]},
        "sources": {j["source"]["name"]: {"type": j["source"]["type"], **j["source"]["params"]}},
        "preprocessing": [{"type": p["type"], **p["params"]} for p in j["preprocessing"]],
        "split": j["split"],
        "models": {m["name"]: {"type": m["type"], **m["params"]} for m in j["models"]},
        "train": j["train"],
    }
    m = info["model"]
    raw["models"].setdefault(m["name"], {"type": m["type"], **m["params"]})
    registry = Path(j["registry"]) if j.get("registry") else None
    if registry is not None and registry.is_file():
        raw["plugin_paths"] = [p for p in read_toml(registry).get("plugin_paths", []) if isinstance(p, str)]
    return resolve(registry, raw=raw, plugins=plugins)


def resume_run(run_dir: str | Path, *, job: Job | None = None, progress: bool = True, console=None,
               dataset=None, plugins=None) -> RunResult:
    """Continue an interrupted run from its last completed epoch (same split, weights, optimizer, RNG)."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no run.json); pass the folder `train` printed")
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    job = job or job_from_run(run_dir, plugins=plugins)
    return train_model(job, info["model"]["name"], run_dir=run_dir, resume=True, progress=progress,
                       console=console, dataset=dataset)
