"""TensorBoard logs through Keras' own callback: learning rate, graph, weight histograms, and
curves that continue across a resume."""

from __future__ import annotations

import pytest

from test_train import make_job, tiny_dataset

pytest.importorskip("tensorboard", reason="the tensorboard extra is installed by scripts/setup.sh")


def _logs(tb_dir):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(tb_dir))
    mux.Reload()
    return mux


def _steps(mux, run, tag):
    return sorted({e.step for e in mux.Tensors(run, tag)})


def test_tensorboard_logs_and_resume(tmp_path):
    from mathsym_zoo.training import resume_run, train_model

    ds = tiny_dataset(tmp_path / "data")
    result = train_model(make_job(tmp_path, epochs=2, lr_schedule="cosine"), "tiny-test", dataset=ds)
    resume_run(result.run_dir, overrides=["train.epochs=3"], dataset=ds)
    mux = _logs(result.run.tb_dir)
    assert set(mux.Runs()) == {"train", "validation"}
    # Epochs numbered from 1 as in history.csv, continued by the resume (initial_epoch).
    for run in ("train", "validation"):
        assert _steps(mux, run, "epoch_loss") == [1, 2, 3]
        assert _steps(mux, run, "epoch_accuracy") == [1, 2, 3]
    history = result.run.history()
    from tensorboard.util.tensor_util import make_ndarray

    lr = {e.step: float(make_ndarray(e.tensor_proto)) for e in mux.Tensors("train", "epoch_learning_rate")}
    assert sorted(lr) == [1, 2, 3] and lr[1] > lr[3]  # the cosine schedule decays
    assert lr[3] == pytest.approx(history[2]["learning_rate"], rel=1e-5)
    histograms = [t for t in mux.Runs()["train"]["tensors"] if t.endswith("/histogram")]
    assert histograms and all(_steps(mux, "train", t) for t in histograms)
    # The model graph (Keras' conceptual graph, shown in TensorBoard's Graphs tab).
    assert mux.SummaryMetadata("train", "keras").plugin_data.plugin_name == "graph_keras_model"


def test_without_tensorboard_training_warns_and_goes_on(tmp_path, monkeypatch):
    import importlib.util

    from mathsym_zoo.training import callbacks as cb

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.warns(UserWarning, match=r"TensorBoard logs are off.*mathsym-zoo\[tensorboard\]"):
        assert cb.tensorboard_logs(tmp_path / "tb", 10) == []
