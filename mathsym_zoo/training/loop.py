"""The training job as named steps: open the run, load its data, build the model, fit, finish.

Exactness: epoch k's data order is ``stateless_shuffle(seed=[train.seed, k])``,
its random draws come from seeds reset from (seed, k) by :class:`EpochSeeds`,
and the optimizer (iterations, moments, loss scale) and every counter come back
from the committed checkpoint and state. So a run killed at any moment and
resumed writes the same ``history.csv`` as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from ..components import call_factory
from ..errors import ConfigError, DataError, ZooError
from ..machine import git_revision, versions
from ..model_card import write_model_card
from ..model_layers import prior_shift
from ..registry import Job, TrainConfig
from ..runs import Run, new_run_path
from . import callbacks as cb
from .guards import check_architecture, check_classes
from .devices import DevicePlan, detect_devices, is_chief, make_strategy, plan_devices
from .batchnorm import BatchNormCalibration
from .ema import EmaWeights
from .recipe import build_optimizer, class_weights

#: ``train --resume RUN --set KEY=VALUE`` may change only these: they cannot change epochs already trained.
EXTENDABLE = ("train.epochs", "train.early_stopping_patience", "train.device", "data.workers", "data.cache_dir")
DATA_ORDER = "stateless_shuffle(seed=[train.seed, epoch])"


class TrainingFailed(ZooError):
    """Training stopped on its own (e.g. the loss became NaN); the run is marked failed."""


@dataclasses.dataclass
class RunResult:
    """What :func:`train_model` returns; everything is also in the run folder."""

    run: Run
    status: str  # "completed" | "early-stopped"
    epochs: int
    best_epoch: int | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    split_hash: str
    model: Any = dataclasses.field(default=None, repr=False)  # the trained keras.Model, best weights
    notes: list[str] = dataclasses.field(default_factory=list)
    devices: dict[str, Any] = dataclasses.field(default_factory=dict)  # the device plan + "replicas" in sync

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def best_path(self) -> Path:
        return self.run.best_path

    @property
    def last_path(self) -> Path:
        return self.run.last_path

    def summary_line(self) -> str:
        """The scores in one line (what a log should end with)."""
        parts = [f"{self.run.model_name}: {self.status} after {self.epochs} epochs"]
        for side in ("val", "test"):
            if side in self.metrics:
                seen = " (trained on: train_on_val)" if side in self.metrics.get("fit_sides", ()) else ""
                parts.append(f"{side} top-1 {self.metrics[side]['accuracy']:.4f}{seen}")
        return "; ".join(parts)


@dataclasses.dataclass
class _Setup:
    """What the steps hand each other."""

    job: Job
    entry: Any
    plan: DevicePlan
    strategy: Any
    run: Run
    state: dict[str, Any]
    dataset: Any
    split: Any
    chief: bool
    created: bool = False  # this call made the run folder (removed again if it fails before any epoch)
    steps: int = 0
    drop_remainder: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def fit_rows(self) -> np.ndarray:
        """The dataset rows training fits: the train side, and the val side with ``train_on_val``."""
        return fit_rows(self.split, self.job.train)


def fit_rows(split, cfg: TrainConfig) -> np.ndarray:
    """Rows of ``split`` that training with ``cfg`` fits (sorted, so the data order stays a function of the seed)."""
    if cfg.train_on_val:
        return np.sort(np.concatenate([split.indices["train"], split.indices["val"]]))
    return np.asarray(split.indices["train"])


def save_model_atomic(model, path: Path) -> None:
    """``model.save`` to a temporary name in the same folder, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- step 1: the run folder ------------------------------------------------------


def _fresh_state(cfg: TrainConfig) -> dict[str, Any]:
    return {"epochs_done": 0, "best": None, "best_epoch": None, "wait": 0, "history": [], "train_seconds": 0.0,
            "seed": cfg.seed, "shuffle_seed": DATA_ORDER}


def check_extension(recorded: dict[str, Any], job: Job) -> None:
    """Refuse a resume whose settings differ from the run's in anything but :data:`EXTENDABLE`."""
    new = job.to_dict()
    changed = []
    for section in ("train", "split"):
        old_s, new_s = recorded.get(section, {}), new.get(section, {})
        changed += [f"{section}.{k}" for k in sorted(old_s)  # keys newer than the run keep their defaults
                    if old_s.get(k) != new_s.get(k) and f"{section}.{k}" not in EXTENDABLE
                    and k not in ("runs_dir", "comparisons_dir")]
    for key in ("source", "preprocessing"):
        if recorded.get(key) != new.get(key):
            changed.append(key)
    if changed:
        raise ConfigError(f"a resumed run keeps its recorded settings; these differ: {', '.join(changed)}. "
                          f"Only {', '.join(EXTENDABLE)} may change (they cannot alter epochs already trained); "
                          "start a new run, or `train MODEL --init-from RUN` to fine-tune from this one")


def _open_run(job: Job, entry, run_dir, resume: bool) -> tuple[Run | None, dict[str, Any] | None, Path]:
    """``(existing run or None, its resume state, folder)``."""
    if not resume:
        path = Path(run_dir) if run_dir is not None else new_run_path(job.runs_dir, entry.name)
        if Run.is_run(path):
            raise ConfigError(f"{path} already holds a run; resume it with --resume {path} or pick a new folder")
        return None, None, path
    if run_dir is None:
        raise ConfigError("resume needs the run folder: --resume RUN_DIR")
    run = Run.open(run_dir)
    check_extension(run.info.get("job") or {}, job)
    return run, run.read_state(), run.path


def _extend(state: dict[str, Any], cfg: TrainConfig, notes: list[str]) -> None:
    """Asking for more epochs than an early-stopped run trained continues it with a fresh patience."""
    if state.get("stopped_early") and cfg.epochs > state["epochs_done"]:
        state["stopped_early"], state["wait"] = False, 0
        notes.append(f"continuing an early-stopped run from epoch {state['epochs_done']} to {cfg.epochs}; "
                     "the early-stopping patience starts again")


def _record(job: Job, entry, dataset, split, plan: DevicePlan, init_from: Run | None) -> dict[str, Any]:
    cfg = job.train
    info = {
        "model": entry.to_dict(),
        "job": job.to_dict(),
        "split": {"hash": split.hash, "path": str(split.path) if split.path else None, "sizes": split.sizes(),
                  "config": split.config},
        "source": dataset.source,
        "dataset_key": dataset.key,
        "class_names": list(dataset.class_names),
        "preprocessing": dataset.preprocessing,
        "input_shape": list(dataset.input_shape),
        "label_smoothing": cfg.label_smoothing,
        "determinism": {"seed": cfg.seed, "data_order": DATA_ORDER, "op_determinism": cfg.deterministic,
                        "layer_rng": "SeedGenerator states reset from (train.seed, epoch) at each epoch start"},
        "versions": versions(),
        "git_revision": git_revision(job.root),
        "resumed": 0,
    }
    if init_from is not None:
        info["parent"] = {"path": str(init_from.path), "model": init_from.model_name,
                          "split_hash": init_from.split_hash, "source": init_from.source_name}
    return info


# -- step 2: data ------------------------------------------------------------------


def training_data(job: Job, dataset):
    """The job's dataset (loaded unless given) and split, checked for training."""
    from ..data.split import load_split

    if dataset is None:
        from ..data.cache import load_dataset

        dataset = load_dataset(job, progress=False)
    split = load_split(dataset, job.split)
    if len(split.indices["train"]) == 0:
        raise ZooError("the split has no training images; check the source and [split]")
    check_classes(np.asarray(dataset.labels)[split.indices["train"]], dataset.class_names)
    if len(split.indices["val"]) == 0:
        raise ConfigError("the split has no validation images (split.val = 0 or too little data); "
                          "early stopping and the best checkpoint need them")
    return dataset, split


# -- step 3: the model -----------------------------------------------------------------


def _batches(cfg: TrainConfig, strategy, split) -> tuple[int, bool]:
    """``(steps per epoch, drop remainder)``, checked before anything is written."""
    from ..data.pipeline import steps_for

    batch_size, n_train = cfg.batch_size, len(fit_rows(split, cfg))
    # Several replicas need identical step counts; and a tiny last batch skews
    # BatchNorm's moving statistics (seen: resnet-lite collapsing in inference
    # mode). The per-epoch reshuffle still shows every image over the epochs.
    drop = strategy.num_replicas_in_sync > 1 or n_train >= 2 * batch_size
    steps = steps_for(n_train, batch_size, drop)
    if steps == 0:
        raise ConfigError(f"train.batch_size = {batch_size} exceeds the {n_train} training images")
    return steps, drop


def _build_model(s: _Setup, init_from: Run | None):
    from ..data.pipeline import build_online_layers, wrap_model

    cfg = s.job.train
    keras.utils.set_random_seed(cfg.seed)
    with s.strategy.scope():
        arch = call_factory(s.entry.component, s.entry.params, s.dataset.input_shape, s.dataset.num_classes)
        check_architecture(s.entry.component, arch, s.dataset.input_shape, s.dataset.num_classes)
        prior = (prior_shift(_class_weights(s), s.dataset.num_classes, cfg.undo_class_weights)
                 if cfg.undo_class_weights else None)
        model = wrap_model(arch, s.dataset.input_shape, build_online_layers(s.job), name=s.entry.name,
                           class_prior=prior)
        if cfg.label_smoothing > 0:
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
        model.compile(optimizer=build_optimizer(cfg, s.steps), loss=loss, metrics=["accuracy"],
                      jit_compile=s.plan.jit_compile)
        if s.state.get("checkpoint"):
            model.optimizer.build(model.trainable_variables)
            _restore(model, s.run.checkpoint(s.state))
            if s.chief:
                s.run.publish(s.state)
        elif init_from is not None:
            from .warm_start import copy_weights

            s.notes += copy_weights(init_from, model, s.dataset.class_names)
    return model


def _restore(model, checkpoint: Path) -> None:
    try:
        model.load_weights(checkpoint)
    except Exception as exc:  # keras raises many types for damaged files
        why = " ".join(str(exc).split())[:200]
        raise DataError(f"{checkpoint}: the resume checkpoint cannot be read ({type(exc).__name__}: {why}); the run "
                        "cannot continue exactly. Start a new run, or fine-tune from its best.keras with "
                        "`train MODEL --init-from RUN`") from None


# -- step 4: fit -------------------------------------------------------------------------


def _callbacks(s: _Setup, extra: Sequence) -> tuple[list, cb.ResumableEarlyStopping]:
    cfg = s.job.train
    n_train = len(s.fit_rows)
    images = s.steps * cfg.batch_size if s.drop_remainder else n_train
    stopper = cb.ResumableEarlyStopping(s.state, patience=cfg.early_stopping_patience, keep_last=cfg.train_on_val)
    out: list = [cb.EpochSeeds(cfg.seed), cb.NonFiniteLoss(s.state), *_statistics(s),
                 cb.EpochRecorder(s.state, images_per_epoch=images), stopper]
    if cfg.lr_schedule == "plateau":
        out.append(cb.ResumablePlateau(s.state, monitor=cb.MONITOR, factor=0.5,
                                       patience=max(1, cfg.early_stopping_patience // 2)))
    if s.chief:
        out += [cb.EpochCommitter(s.run, s.state, save_model_atomic), *cb.tensorboard_logs(s.run.tb_dir, cfg.epochs)]
    return out + list(extra), stopper


def _statistics(s: _Setup) -> list:
    """The callback that sets what validation and checkpoints hold: the EMA of weights (which re-estimates
    BatchNorm statistics itself), else freshly estimated BatchNorm statistics, else the moving ones."""
    cfg, images, rows = s.job.train, s.dataset.images, s.fit_rows
    if cfg.ema:
        return [EmaWeights.for_training(images, rows)]
    return [BatchNormCalibration.for_training(images, rows)] if cfg.recalibrate_batchnorm else []


def _class_weights(s: _Setup) -> dict[int, float]:
    """Loss weight per class from the training side's counts (``class_weights``)."""
    labels = np.asarray(s.dataset.labels)[s.fit_rows]
    return class_weights(labels, s.dataset.num_classes, s.job.train.class_weight_power)


def _fit(s: _Setup, model, pipe, val_ds, callbacks: list, loop) -> None:
    cfg = s.job.train
    initial_epoch = int(s.state["epochs_done"])
    train_ds = pipe.train(s.fit_rows, batch_size=cfg.batch_size, seed=cfg.seed, epochs=cfg.epochs,
                          initial_epoch=initial_epoch, drop_remainder=s.drop_remainder,
                          shard_data=s.plan.strategy == "multi-worker")
    weights = _class_weights(s) if cfg.class_weights else None
    fit = loop.fit if loop is not None else (lambda ds, **kw: model.fit(ds, shuffle=False, verbose=0, **kw))
    fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
        steps_per_epoch=s.steps, class_weight=weights, callbacks=callbacks)


def _plan_line(s: _Setup) -> str:
    cfg, plan = s.job.train, s.plan
    sides = " (train and val sides: train_on_val)" if cfg.train_on_val else ""
    return (f"training {s.entry.name} on {len(s.fit_rows)} images{sides} ({s.steps} steps/epoch, batch "
            f"{cfg.batch_size}), epochs {int(s.state['epochs_done']) + 1}..{cfg.epochs}, strategy {plan.strategy} on "
            f"{','.join(plan.devices)}, mixed precision {'on' if plan.mixed_precision else 'off'}, "
            f"XLA {'on' if plan.jit_compile else 'off'}")


# -- step 5: scores and status ---------------------------------------------------------------


def _final_metrics(s: _Setup, model, sides: dict[str, Any], loop) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for side, ds in sides.items():
        values = loop.evaluate(ds) if loop is not None else model.evaluate(ds, verbose=0, return_dict=True)
        metrics[side] = {"loss": _finite(values["loss"]), "accuracy": _finite(values["accuracy"]),
                         "images": int(len(s.split.indices[side]))}
    st = s.state
    train_seconds = float(st.get("train_seconds", 0.0))
    metrics.update({
        "epochs": int(st["epochs_done"]),
        "best_epoch": st.get("best_epoch"),
        "stopped_early": bool(st.get("stopped_early")),
        "train_seconds": round(train_seconds, 3),
        "seconds_per_epoch": round(train_seconds / max(1, len(st["history"])), 3),
        "train_images_per_second": round(st.get("train_images", 0) / st["train_phase_seconds"], 1)
        if st.get("train_phase_seconds") else None,
        "split_hash": s.split.hash,
        "fit_sides": ["train", "val"] if s.job.train.train_on_val else ["train"],
    })
    return metrics


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


@contextlib.contextmanager
def _precision(mixed: bool):
    previous = keras.mixed_precision.global_policy().name
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


# -- the job -----------------------------------------------------------------------------------


def _setup(job: Job, model_name: str, run_dir, resume: bool, init_from, dataset) -> tuple[_Setup, Run | None]:
    cfg = job.train
    entry = job.model(model_name)
    plan = plan_devices(cfg, detect_devices(), os.environ.get("TF_CONFIG"))
    strategy = make_strategy(plan)  # before other TensorFlow work (multi-worker needs that)
    if cfg.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    parent = Run.open(init_from) if init_from is not None and not isinstance(init_from, Run) else init_from
    run, state, path = _open_run(job, entry, run_dir, resume)
    dataset, split = training_data(job, dataset)
    steps, drop = _batches(cfg, strategy, split)
    chief = is_chief(plan)
    if run is not None:
        if run.split_hash != split.hash:
            raise ZooError(f"cannot resume {run.path}: its split hash {str(run.split_hash)[:12]} differs from the "
                           f"current one {split.hash[:12]}; the data or [split] changed")
        info = {**run.info, "job": job.to_dict(), "resumed": int(run.info.get("resumed", 0)) + 1}
    else:
        _check_parent(parent, entry)
        info = _record(job, entry, dataset, split, plan, parent)
        run = Run(path) if not chief else Run.create(path, {**info, "status": "running"})
    info.update(status="running", devices=_devices(plan, strategy), pid=os.getpid())
    if chief:
        run.write_info(info)
    s = _Setup(job, entry, plan, strategy, run, state or _fresh_state(cfg), dataset, split, chief, not resume, steps,
               drop)
    _extend(s.state, cfg, s.notes)
    return s, parent


def _devices(plan: DevicePlan, strategy) -> dict[str, Any]:
    """The device plan and how many replicas train in sync (2 for two single-device workers)."""
    return {**plan.to_dict(), "replicas": int(strategy.num_replicas_in_sync)}


def _check_parent(parent: Run | None, entry) -> None:
    if parent is not None and parent.architecture and parent.architecture != entry.type:
        raise ConfigError(f"--init-from {parent.path}: that run trained {parent.architecture!r}, not {entry.type!r}; "
                          "weights only carry over between runs of the same architecture")


def train_model(job: Job, model_name: str, *, run_dir: str | Path | None = None, resume: bool = False,
                init_from: str | Path | Run | None = None, dataset=None, callbacks: Sequence = (),
                log: Callable[[str], None] | None = None) -> RunResult:
    """Train one model of the job into a run folder; ``resume=True`` continues ``run_dir``.

    ``init_from`` starts from another run's weights (fine-tuning). ``callbacks``
    are extra Keras callbacks (progress display); ``log`` gets the plan line and
    notes. ``dataset`` skips :func:`mathsym_zoo.data.cache.load_dataset`.
    """
    s, parent = _setup(job, model_name, run_dir, resume, init_from, dataset)
    say = log or (lambda line: None)
    try:
        with _precision(s.plan.mixed_precision):
            return _train(s, parent, callbacks, say)
    except BaseException as exc:
        if s.chief and Run.is_run(s.run.path):
            _record_failure(s, exc)
        raise


def _record_failure(s: _Setup, exc: BaseException) -> None:
    """Mark the run interrupted or failed (with the reason); a new run with no epoch is removed."""
    import shutil

    setup_failed = not isinstance(exc, (KeyboardInterrupt, TrainingFailed)) and not s.state.get("epochs_done")
    if s.created and setup_failed:
        shutil.rmtree(s.run.path, ignore_errors=True)  # nothing worth keeping: leave no empty run behind
        return
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        s.run.set_status("interrupted")
    else:
        reason = str(exc) if isinstance(exc, ZooError) else f"{type(exc).__name__}: {exc}"
        s.run.set_status("failed", " ".join(reason.split())[:500])


def _train(s: _Setup, parent: Run | None, callbacks: Sequence, say: Callable[[str], None]) -> RunResult:
    from ..data.pipeline import ArrayPipeline

    cfg = s.job.train
    model = _build_model(s, parent)
    for note in s.notes:
        say(f"note: {note}")
    pipe = ArrayPipeline(s.dataset.images, s.dataset.labels, s.dataset.num_classes, one_hot=cfg.label_smoothing > 0)
    shard = s.plan.strategy == "multi-worker"
    sides = {side: pipe.eval(s.split.indices[side], batch_size=cfg.batch_size, shard_data=shard)
             for side in ("val", "test") if len(s.split.indices[side])}
    cbs, stopper = _callbacks(s, callbacks)
    loop = None
    if s.plan.strategy == "multi-worker":
        from .multi_worker import MultiWorkerLoop, build_for_multi_worker

        build_for_multi_worker(model, pipe, s.fit_rows[:cfg.batch_size], s.strategy)
        loop = MultiWorkerLoop(model, s.strategy)
    if s.state.get("stopped_early") or s.state["epochs_done"] >= cfg.epochs:
        say(f"{s.run.path}: already finished ({s.state['epochs_done']} epochs); scoring the best checkpoint")
    else:
        say(f"{_plan_line(s)} -> {s.run.path}")
        _fit(s, model, pipe, sides["val"], cbs, loop)
        if s.state.get("failure"):
            raise TrainingFailed(f"{s.entry.name}: {s.state['failure']}; the run keeps its last good checkpoint "
                                 f"(epoch {s.state['epochs_done']}). Lower train.learning_rate or check the data")
    if stopper.best_weights is not None:
        model.set_weights(stopper.best_weights)
    elif s.run.best_path.is_file():
        model.load_weights(s.run.best_path)
    metrics = _final_metrics(s, model, sides, loop)
    status = "early-stopped" if s.state.get("stopped_early") else "completed"
    if s.chief:
        s.run.write_metrics(metrics)
        if not s.run.last_path.exists():
            save_model_atomic(model, s.run.last_path)
        s.run.set_status(status)
        write_model_card(s.run, model=model, dataset=s.dataset, split=s.split, at_training_end=True, log=say)
    return RunResult(run=s.run, status=status, epochs=int(s.state["epochs_done"]), best_epoch=s.state.get("best_epoch"),
                     metrics=metrics, history=list(s.state["history"]), split_hash=s.split.hash, model=model,
                     notes=s.notes, devices=_devices(s.plan, s.strategy))


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse ``--set`` keys a resume may not change (anything outside :data:`EXTENDABLE`)."""
    bad = [o for o in overrides if o.split("=", 1)[0].strip() not in EXTENDABLE]
    if bad:
        raise ConfigError(f"--set {bad[0]!r}: a resumed run keeps its recorded settings; only "
                          f"{', '.join(EXTENDABLE)} may change (they cannot alter epochs already trained)")


def resume_run(run_dir: str | Path, *, overrides: Sequence[str] = (), job: Job | None = None, plugins=None,
               dataset=None, callbacks: Sequence = (), log: Callable[[str], None] | None = None) -> RunResult:
    """Continue a run from its last completed epoch, or extend a finished one
    (``overrides=["train.epochs=20"]``; only :data:`EXTENDABLE` keys may change)."""
    run = Run.open(run_dir)
    check_overrides(overrides)
    job = job or run.job(plugins=plugins, overrides=overrides)
    return train_model(job, run.model_name, run_dir=run.path, resume=True, dataset=dataset, callbacks=callbacks,
                       log=log)
