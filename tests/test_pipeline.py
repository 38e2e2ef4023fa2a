"""tf.data from the cached arrays, and the model wrapper (scaling and online layers inside)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from mathsym_zoo.data.pipeline import ArrayPipeline, epoch_order, steps_for, wrap_model  # noqa: E402


@pytest.fixture(scope="module")
def arrays():
    n = 37
    images = (np.arange(n * 4 * 4) % 251).astype(np.uint8).reshape(n, 4, 4, 1)
    images[:, 0, 0, 0] = np.arange(n)  # pixel (0, 0) names the image
    labels = (np.arange(n) % 3).astype(np.int32)
    return images, labels


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_epoch_order_is_a_seeded_permutation():
    idx = np.arange(100, 200)
    a, b = epoch_order(idx, seed=3, epoch=0), epoch_order(idx, seed=3, epoch=0)
    assert np.array_equal(a, b)
    assert sorted(a.tolist()) == idx.tolist() and not np.array_equal(a, idx)
    assert not np.array_equal(a, epoch_order(idx, seed=3, epoch=1))
    assert not np.array_equal(a, epoch_order(idx, seed=4, epoch=0))


def test_train_batches_reshuffle_each_epoch_and_resume_identically(arrays):
    images, labels = arrays
    pipe = ArrayPipeline(images, labels, 3)
    train_idx = np.arange(0, 37, 2)  # 19 items
    full = batches(pipe.train(train_idx, batch_size=4, seed=1, epochs=3))
    steps = steps_for(len(train_idx), 4)
    assert steps == 5 and len(full) == 3 * steps
    seen = [np.concatenate([x[:, 0, 0, 0] for x, _ in full[e * steps:(e + 1) * steps]]).astype(int) for e in range(3)]
    for e in range(3):
        assert sorted(seen[e].tolist()) == train_idx.tolist()  # every image once per epoch
        assert np.array_equal(seen[e], epoch_order(train_idx, 1, e))
    assert not np.array_equal(seen[0], seen[1])
    # Resuming at epoch 1 replays exactly the batches of epochs 1 and 2.
    resumed = batches(pipe.train(train_idx, batch_size=4, seed=1, epochs=3, initial_epoch=1))
    assert len(resumed) == 2 * steps
    for (x1, y1), (x2, y2) in zip(resumed, full[steps:]):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_images_and_labels_stay_aligned_raw_uint8(arrays):
    images, labels = arrays
    pipe = ArrayPipeline(images, labels, 3)
    for x, y in batches(pipe.train(np.arange(37), batch_size=8, seed=0, epochs=1)):
        assert x.dtype == np.uint8  # raw values; the model casts and scales
        ids = x[:, 0, 0, 0].astype(int)
        assert np.array_equal(x, images[ids])
        assert np.array_equal(y, labels[ids])


def test_drop_remainder_and_eval_order(arrays):
    images, labels = arrays
    pipe = ArrayPipeline(images, labels, 3, one_hot=True)
    dropped = batches(pipe.train(np.arange(37), batch_size=8, seed=0, epochs=1, drop_remainder=True))
    assert len(dropped) == steps_for(37, 8, drop_remainder=True) == 4
    evald = batches(pipe.eval([5, 1, 9], batch_size=2))
    assert [b[0].shape[0] for b in evald] == [2, 1]
    assert np.concatenate([x[:, 0, 0, 0] for x, _ in evald]).astype(int).tolist() == [5, 1, 9]
    y = evald[0][1]
    assert y.shape == (2, 3) and np.array_equal(y.argmax(1), labels[[5, 1]])


def _arch(input_shape, num_classes, dtype=None):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax", dtype=dtype)], name="arch")


def test_wrap_model_scales_inside_and_round_trips(tmp_path):
    arch = _arch((4, 4, 1), 3)
    flip = keras.layers.RandomFlip("horizontal", seed=1)
    model = wrap_model(arch, (4, 4, 1), [flip], name="wrapped")
    assert [layer.name for layer in model.layers][:2] == ["image", "scale_0_1"]
    assert any(layer is flip for layer in model.layers)
    x = np.full((2, 4, 4, 1), 255.0, np.float32)
    probe = keras.Model(model.input, model.get_layer("scale_0_1").output)
    assert np.allclose(probe(x).numpy(), 1.0)
    assert np.allclose(model.predict(x.astype(np.uint8), verbose=0), model.predict(x, verbose=0))  # uint8 batches too
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_wrap_model_keeps_float32_output_under_mixed_precision():
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = wrap_model(_arch((4, 4, 1), 3), (4, 4, 1))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.layers[-1].name == "output_float32"
    out = model(np.zeros((1, 4, 4, 1), np.float32))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
