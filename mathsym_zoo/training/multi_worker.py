"""Training under MultiWorkerMirroredStrategy, where Keras 3's ``fit`` cannot reduce its logs."""

from __future__ import annotations

from typing import Any


def build_for_multi_worker(model, pipe, indices, strategy) -> None:
    """Create the compiled loss and metric variables from one local batch, under the
    strategy, before any step is traced in replica context."""
    x, y = next(iter(pipe.eval(indices, batch_size=len(indices))))
    with strategy.scope():
        model._symbolic_build(data_batch=(x, y, None))


class MultiWorkerLoop:
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
            cbs.on_test_begin()  # as fit does: callbacks prepare the model that is validated (EMA, BatchNorm)
            val_logs = {f"val_{k}": v for k, v in self.evaluate(validation_data).items()}
            cbs.on_test_end(val_logs)
            epoch_logs.update(val_logs)
            cbs.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
        cbs.on_train_end()
