"""Test-time augmentation: deterministic variants that keep the data's shape (ink re-fitted to the box,
paper kept), averaged inside the compiled call; evaluate and predict take it."""

from __future__ import annotations

import numpy as np
import pytest

from mathsym_zoo.tta import VARIANTS, check_tta, distort_refit


def symbol(paper=255, ink=0, size=45) -> np.ndarray:
    """A normalised 'L': its longer side (height) fills the box, centred; float (1, H, W, 1)."""
    img = np.full((size, size), paper, np.float32)
    img[:, 14:17] = ink  # the upright stroke, full height
    img[-3:, 14:31] = ink  # the foot
    return img[None, :, :, None]


def ink_box(img: np.ndarray, paper: float):
    rows, cols = np.nonzero(np.abs(img[0, :, :, 0] - paper) > 0.3 * 255)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("paper, ink", [(255, 0), (0, 255)])
@pytest.mark.parametrize("degrees, shear", [v for v in VARIANTS if v != (0.0, 0.0)])
def test_variants_keep_the_data_shape(paper, ink, degrees, shear):
    """Each variant differs from the image, yet its ink still fills the box's height, centred, on the same paper."""
    img = symbol(paper, ink)
    out = np.asarray(distort_refit(img, degrees, shear))
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 255
    assert np.abs(out - img).max() > 100  # the strokes moved
    r0, r1, c0, c1 = ink_box(out, paper)
    assert (r0, r1) == (0, 44)  # the longer side fills the box ...
    assert abs((c0 + c1) / 2 - 22) <= 1.5  # ... and the symbol stays centred
    assert np.all(out[0, [0, 0, -1], [0, -1, -1], 0] == paper)  # paper stays paper


@pytest.mark.parametrize("degrees, shear", [(5.0, 0.0), (0.0, 0.1)])
def test_variants_refit_the_ink_to_the_box(degrees, shear):
    """The re-fit scales whatever ink there is so its longer side fills the box, as the data was made."""
    img = np.full((1, 45, 45, 1), 255, np.float32)
    img[0, 12:33, 20:25] = 0  # a small upright bar, 21 px tall
    r0, r1, c0, c1 = ink_box(np.asarray(distort_refit(img, degrees, shear)), 255)
    assert (r0, r1) == (0, 44) and c1 - c0 < 30


def test_variants_are_deterministic_and_blank_images_pass_unchanged():
    img = np.concatenate([symbol(), np.full((1, 45, 45, 1), 255, np.float32)])
    a, b = np.asarray(distort_refit(img, 5.0, 0.1)), np.asarray(distort_refit(img, 5.0, 0.1))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[1], img[1])
    # No distortion: the re-fit of an already fitted symbol gives it back.
    assert np.abs(np.asarray(distort_refit(img, 0.0, 0.0)) - img).max() < 1.0


def test_compiled_model_averages_the_variants():
    import keras

    from mathsym_zoo.inference import CompiledModel

    model = keras.Sequential([keras.Input((45, 45, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    images = np.concatenate([symbol(), symbol()[:, :, ::-1]]).astype(np.uint8)
    plain, tta3 = CompiledModel(model)(images), CompiledModel(model, tta=3)(images)
    views = [images.astype("float32")] + [np.asarray(distort_refit(images.astype("float32"), d, s))
                                          for d, s in VARIANTS[1:3]]
    expected = np.mean([model(v).numpy() for v in views], axis=0)
    np.testing.assert_allclose(tta3, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(CompiledModel(model, tta=1)(images), model(images.astype("float32")).numpy(), rtol=1e-5)
    assert not np.allclose(plain, tta3)
    np.testing.assert_allclose(CompiledModel(model, tta=3)(images[:1]), tta3[:1], rtol=1e-5)  # single-image path


def test_tta_counts_are_checked():
    assert check_tta(1) == 1 and check_tta(len(VARIANTS)) == len(VARIANTS)
    for bad in (0, len(VARIANTS) + 1, True, 2.0):
        with pytest.raises(ValueError, match="--tta"):
            check_tta(bad)


def test_evaluate_and_predict_take_tta(tmp_path):
    """A run evaluated with --tta keeps its evaluation beside the plain one; predict averages too."""
    from mathsym_zoo.cli.app import run as cli
    from mathsym_zoo.evaluate import Evaluation
    from mathsym_zoo.predict import load_classifier
    from mathsym_zoo.runs import Run
    from test_runs import registry

    reg = registry(tmp_path, demo_per_class=8)
    assert cli(["train", "tiny", "--registry", str(reg), "--set", "train.epochs=1", "--no-progress"]) == 0
    (run_dir,) = list((tmp_path / "runs").iterdir())
    assert cli(["evaluate", str(run_dir), "--tta", "4", "--no-progress"]) == 0
    run = Run.open(run_dir)
    folder = run.evaluation_dir("demo", "test", tta=4)
    assert folder.name == "demo-test-tta4" and Evaluation.exists(folder)
    evaluation = Evaluation.load(folder)
    assert evaluation.metrics["tta"] == 4 and any("4 variants" in n for n in evaluation.notes)
    assert cli(["evaluate", str(run_dir), "--tta", "99", "--no-progress"]) == 2  # usage error, no traceback
    clf, plain = load_classifier(run_dir, tta=4), load_classifier(run_dir)
    bar = np.full((16, 16), 255, np.uint8)
    bar[3:13, 7:9] = 0
    probs = clf.predict_proba(np.stack([clf.preprocess(bar)] * 2))
    assert probs.shape == (2, len(clf.class_names)) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert clf.predict([bar])[0].ok and plain.predict([bar])[0].ok
