"""tf.data from the cached uint8 arrays, and the model wrapper that makes saved
models take raw 0-255 images.

The images are put in memory once as one uint8 tensor; a pipeline is a dataset
of *indices*, batched, then gathered in parallel (no per-sample Python code),
yielding uint8 image batches and int32 (or one-hot float) labels.
The train side is fully reshuffled each epoch with a stateless shuffle seeded
by ``(seed, epoch)``, so epoch k sees the same order whether the run was
resumed or not.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..components import is_offline


def epoch_seed(seed: int, epoch: int) -> list[int]:
    """The stateless-shuffle seed of ``epoch``: a pure function of (run seed, epoch)."""
    return [int(seed), int(epoch)]


def steps_for(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    return n // batch_size if drop_remainder else -(-n // batch_size)


class ArrayPipeline:
    """Input pipelines over one in-memory copy of a Dataset's images and labels.

    ``one_hot`` gives float one-hot labels (needed for label smoothing),
    otherwise int32 class indexes.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, num_classes: int, *, one_hot: bool = False):
        import tensorflow as tf

        with tf.device("/cpu:0"):  # the input pipeline runs on the host
            self.images = tf.constant(np.ascontiguousarray(images, dtype=np.uint8))
            self.labels = tf.constant(np.asarray(labels, dtype=np.int32))
        self.num_classes = int(num_classes)
        self.one_hot = one_hot

    def _gather(self, idx):
        import tensorflow as tf

        # uint8 batches: 4x fewer bytes to move (host to GPU too); the model's float32
        # input casts them inside the compiled step, and its first layer scales to 0-1.
        x = tf.gather(self.images, idx)
        y = tf.gather(self.labels, idx)
        if self.one_hot:
            y = tf.one_hot(y, self.num_classes, dtype=tf.float32)
        return x, y

    def _finish(self, ds, shard_data: bool):
        import tensorflow as tf

        ds = ds.map(self._gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        # Index datasets have no files to shard: multi-worker runs shard batches (same order everywhere).
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA if shard_data else tf.data.experimental.AutoShardPolicy.OFF)
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    def train(self, indices: Sequence[int], *, batch_size: int, seed: int, epochs: int, initial_epoch: int = 0,
              drop_remainder: bool = False, shard_data: bool = False):
        """Batches for epochs ``initial_epoch .. epochs-1`` back to back, each epoch
        a fresh full permutation. Pass ``steps_per_epoch`` = :func:`steps_for` to fit."""
        import tensorflow as tf

        idx = tf.constant(np.asarray(indices, dtype=np.int64))
        seed_t = tf.constant(int(seed), tf.int64)

        def one_epoch(epoch):
            order = tf.random.experimental.stateless_shuffle(idx, seed=tf.stack([seed_t, epoch]))
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)

        ds = tf.data.Dataset.range(int(initial_epoch), int(epochs)).flat_map(one_epoch)
        return self._finish(ds, shard_data)

    def eval(self, indices: Sequence[int], *, batch_size: int, shard_data: bool = False):
        """Batches in index order, once."""
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices(np.asarray(indices, dtype=np.int64)).batch(batch_size)
        return self._finish(ds, shard_data)


def epoch_order(indices: Sequence[int], seed: int, epoch: int) -> np.ndarray:
    """The order in which the train side is visited in ``epoch`` (for tests and audits)."""
    import tensorflow as tf

    idx = tf.constant(np.asarray(indices, dtype=np.int64))
    return tf.random.experimental.stateless_shuffle(idx, seed=tf.constant(epoch_seed(seed, epoch), tf.int64)).numpy()


def build_online_layers(job) -> list:
    """Keras layers of the job's online preprocessing steps, in registry order."""
    return [p.keras_layer() for p in job.build_preprocessors() if not is_offline(p)]


def wrap_model(arch_model, input_shape: Sequence[int], online_layers: Iterable = (), *, name: str | None = None,
               class_prior: Sequence[float] | None = None):
    """The model that is trained, saved and exported: raw 0-255 float input ->
    ``Rescaling(1/255)`` -> online preprocessing layers -> architecture -> float32 softmax
    [-> ``ClassPrior(class_prior)``: undoes class-weighted training at inference].

    A float32 output layer is appended when the architecture computes in another
    dtype (mixed precision), so losses and predictions stay float32.
    """
    import keras

    from ..model_layers import ClassPrior

    inputs = keras.Input(shape=tuple(int(d) for d in input_shape), dtype="float32", name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="scale_0_1")(inputs)
    for layer in online_layers:
        x = layer(x)
    x = arch_model(x)
    if keras.backend.standardize_dtype(x.dtype) != "float32":
        x = keras.layers.Activation("linear", dtype="float32", name="output_float32")(x)
    if class_prior is not None:
        x = ClassPrior(class_prior, dtype="float32", name="class_prior")(x)
    return keras.Model(inputs, x, name=name or arch_model.name)
