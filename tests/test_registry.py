"""registry.toml validation, error messages, overrides and resolution."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pydantic
import pytest

from mathsym_zoo.cli import run
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.registry import SHIPPED_REGISTRY, apply_override, parse_value, resolve

REPO = Path(__file__).resolve().parents[1]
BASE = '[data]\nsource = "demo"\n[sources.demo]\ntype = "demo"\n'


def error_for(tmp_path, body: str) -> str:
    path = tmp_path / "registry.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        resolve(path)
    return str(err.value)


# Each bad registry gives one paragraph naming the key and the bad value.
BAD_REGISTRIES = [
    ("invalid TOML", "[train\nepochs = 3\n",
     "registry.toml is not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 7). "
     "Fix the syntax at that line."),
    ("wrong type", BASE + '[train]\nepochs = "many"\n',
     'registry.toml: train.epochs: input should be a valid integer, unable to parse string as an integer, got "many"'),
    ("unknown section", BASE + "[trainig]\nepochs = 3\n",
     "registry.toml: trainig: unknown key. Did you mean 'train'? Allowed keys: data, models, plugin_paths, "
     "preprocessing, sources, split, train."),
    ("unknown key in section", BASE + "[train]\nepoch = 3\n",
     "registry.toml: train.epoch: unknown key. Did you mean 'epochs'?"),
    ("out of range", BASE + "[train]\nbatch_size = 0\n",
     "registry.toml: train.batch_size: input should be greater than or equal to 1, got 0"),
    ("not a choice", BASE + '[train]\noptimizer = "adamax"\n',
     "registry.toml: train.optimizer: input should be 'adam', 'adamw' or 'sgd', got \"adamax\""),
    ("fractions", BASE + "[split]\ntrain = 0.7\nval = 0.1\ntest = 0.1\n",
     "registry.toml: split: train + val + test must be 1.0, got 0.9"),
    ("unknown architecture", BASE + '[models.res]\ntype = "resnet-light"\n',
     "registry.toml: models.res.type: unknown architecture 'resnet-light'. Did you mean 'resnet-lite'? "
     "Registered architectures: "),
    ("unknown source plugin", '[data]\nsource = "mine"\n[sources.mine]\ntype = "archiv"\n',
     "registry.toml: sources.mine.type: unknown source 'archiv'. Did you mean 'archive'? Registered sources: "),
    ("default source missing", '[data]\nsource = "kagle"\n',
     "registry.toml: data.source: unknown source 'kagle'. Did you mean 'kaggle'? Sources in the registry: (none); "
     "source plugins: "),
    ("preprocessing without type", BASE + "[[preprocessing]]\nsize = [45, 45]\n",
     'registry.toml: preprocessing[0]: missing `type` (a preprocessor name, e.g. type = "resize_pad")'),
    ("plugin parameter", BASE + '[[preprocessing]]\ntype = "resize_pad"\nresample = "cubic"\n',
     "registry.toml: preprocessing[0].resample: input should be 'nearest', 'bilinear', 'bicubic', 'lanczos', "
     "'box' or 'hamming', got \"cubic\""),
    ("plugin parameter unknown", BASE + '[[preprocessing]]\ntype = "resize_pad"\nsizes = 3\n',
     "registry.toml: preprocessing[0].sizes: unknown key. Did you mean 'size'? Allowed keys: fill, resample, size."),
    ("section of wrong type", "sources = 3\n[data]\nsource = \"demo\"\n",
     "registry.toml: sources: input should be a valid dictionary, got 3"),
    ("model entry not a table", BASE + "[models]\nfoo = 3\n",
     "registry.toml: models.foo: input should be a valid dictionary, got 3"),
    ("plugin_paths not a list", 'plugin_paths = "x"\n' + BASE,
     'registry.toml: plugin_paths: input should be a valid list, got "x"'),
    ("type not a string", BASE + "[models.x]\ntype = 3\n",
     "registry.toml: models.x.type: expected the architecture name as a string, got 3"),
]


@pytest.mark.parametrize("case, body, expected", BAD_REGISTRIES, ids=[c[0] for c in BAD_REGISTRIES])
def test_bad_registry_messages(tmp_path, case, body, expected):
    message = error_for(tmp_path, body)
    assert message.startswith(expected), message
    assert "Traceback" not in message


def test_several_errors_are_listed_together(tmp_path):
    message = error_for(tmp_path, BASE + '[train]\nepochs = "x"\nbatch_size = -1\n')
    assert message.splitlines()[0] == "registry.toml: invalid values"
    assert "  train.epochs: input should be a valid integer" in message
    assert "  train.batch_size: input should be greater than or equal to 1, got -1" in message


def test_check_command_exit_codes(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "[train]\nepoch = 3\n")
    assert run(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "train.epoch: unknown key" in err and "Traceback" not in err
    good = tmp_path / "good.toml"
    good.write_text(BASE + "[train]\nepochs = 3\n")
    assert run(["check", str(good), "--json"]) == 0
    assert '"epochs": 3' in capsys.readouterr().out
    assert run(["check", str(tmp_path / "missing.toml")]) == 1
    assert "not found" in capsys.readouterr().err


def test_default_registry_resolves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = resolve()  # no registry.toml here: the one shipped in the package
    assert job.registry_path == SHIPPED_REGISTRY
    assert job.source.name == "demo"  # works offline for everyone
    assert [m.type for m in job.models] == ["notebook-cnn", "resnet-lite", "mobilenet-head"]
    # Offline steps key the cache; the writer-shift augmentation runs online, inside the model.
    assert [p.type for p in job.preprocessing] == ["grayscale", "resize_pad", "random_affine", "random_erasing"]
    # Relative paths of the shipped registry point at the user's folder, not into the installed package.
    assert job.root == tmp_path and job.cache_dir == tmp_path / ".mathsym-cache"
    assert job.runs_dir == tmp_path / "runs"


def test_crohme_without_its_file_says_where_to_get_real_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ../shared/data/crohme_bench.zip does not exist from here
    job = resolve(source="crohme")
    with pytest.raises(Exception, match=r"does not exist.*Kaggle 'Handwritten math symbols dataset'.*--source demo"):
        job.build_source().check()


def test_source_can_be_a_path(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "extracted_images"
    (folder / "sum").mkdir(parents=True)
    (tmp_path / "data.rar").write_bytes(b"Rar!")
    monkeypatch.chdir(tmp_path)
    job = resolve(SHIPPED_REGISTRY, source="data/extracted_images")
    assert (job.source.name, job.source.type) == ("extracted_images", "archive")
    assert job.source.params.path == str(folder)  # absolute: the run records where the data was
    job = resolve(SHIPPED_REGISTRY, source="./data.rar")
    assert job.source.name == "data" and job.source.params.path == str(tmp_path / "data.rar")
    with pytest.raises(ConfigError, match=r"--source 'missing.zip': no such file or folder"):
        resolve(SHIPPED_REGISTRY, source="missing.zip")
    assert resolve(SHIPPED_REGISTRY, source="demo").source.type == "demo"  # names still win


def test_overrides_and_source_switch():
    job = resolve(SHIPPED_REGISTRY, source="demo", overrides=["train.epochs=3", "train.learning_rate=0.01",
                                                                     "split.seed=7", "preprocessing.1.size=[32, 32]"])
    assert job.source.name == "demo" and job.train.epochs == 3 and job.train.learning_rate == 0.01
    assert job.split.seed == 7 and job.preprocessing[1].params.size == (32, 32)
    with pytest.raises(ConfigError, match=r"train.epochs: input should be a valid integer.*got \"three\""):
        resolve(SHIPPED_REGISTRY, source="demo", overrides=["train.epochs=three"])
    with pytest.raises(ConfigError, match=r"--source: unknown source 'dem'. Did you mean 'demo'\?"):
        resolve(SHIPPED_REGISTRY, source="dem")


def test_a_source_can_carry_its_own_train_settings(tmp_path):
    """[sources.NAME.train] applies only when that source is used; --set train.KEY wins over it."""
    path = tmp_path / "registry.toml"
    path.write_text(BASE + "[sources.demo.train]\nepochs = 30\nbatch_size = 128\n"
                    "[sources.small]\ntype = \"demo\"\nimages_per_class = 4\n[train]\nepochs = 5\nseed = 3\n")
    job = resolve(path)
    assert (job.train.epochs, job.train.batch_size, job.train.seed) == (30, 128, 3)
    assert "train" not in job.source.params.model_dump()  # the table is not a source parameter
    assert (resolve(path, source="small").train.epochs, resolve(path, source="small").train.batch_size) == (5, 64)
    assert resolve(path, overrides=["train.epochs=2"]).train.epochs == 2
    assert resolve(path, overrides=["data.source=small"]).train.epochs == 5
    assert resolve(path, overrides=["sources.small.train.epochs=7"], source="small").train.epochs == 7
    assert resolve(path, overrides=["sources.demo.train.epochs=7", "train.epochs=2"]).train.epochs == 2
    with pytest.raises(ConfigError, match=r"sources.small.train.epochs: input should be greater than or equal to 1"):
        resolve(path, overrides=["sources.small.train.epochs=0"])  # checked even when another source is used
    with pytest.raises(ConfigError, match=r"sources.demo.train: expected a table"):
        resolve(path, overrides=["sources.demo.train=3"])


def test_a_recipe_goes_over_the_source_settings_and_under_set(tmp_path, capsys):
    """--recipe NAME merges [recipes.NAME] over [train] and the source's own table; --set wins."""
    path = tmp_path / "registry.toml"
    path.write_text(BASE + "[sources.demo.train]\nepochs = 30\nbatch_size = 128\n"
                    "[recipes.final-fit]\nepochs = 15\ntrain_on_val = true\n"
                    "[train]\nseed = 3\nearly_stopping_patience = 0\n")
    job = resolve(path, recipe="final-fit")
    assert (job.train.epochs, job.train.batch_size, job.train.train_on_val, job.train.seed) == (15, 128, True, 3)
    assert (resolve(path).train.epochs, resolve(path).train.train_on_val) == (30, False)  # only when chosen
    assert resolve(path, recipe="final-fit", overrides=["train.epochs=2"]).train.epochs == 2
    assert resolve(path, recipe="final-fit", overrides=["recipes.final-fit.epochs=4"]).train.epochs == 4
    with pytest.raises(ConfigError, match=r"--recipe: unknown recipe 'final'.*Did you mean 'final-fit'\?"):
        resolve(path, recipe="final")
    with pytest.raises(ConfigError, match=r"recipes.final-fit.epochs: input should be greater than or equal to 1"):
        resolve(path, overrides=["recipes.final-fit.epochs=0"])  # checked even when not chosen
    # An unused recipe's rules between keys wait for the merged [train]: a chosen one is checked there.
    assert resolve(path, overrides=["recipes.final-fit.undo_class_weights=0.5"]).train.undo_class_weights == 0
    with pytest.raises(ConfigError, match=r"train: undo_class_weights undoes class_weights"):
        resolve(path, recipe="final-fit", overrides=["recipes.final-fit.undo_class_weights=0.5"])
    with pytest.raises(ConfigError, match=r"recipes: expected one table"):
        resolve(path, overrides=["recipes=3"])
    assert run(["check", str(path), "--recipe", "final-fit", "--json"]) == 0
    assert '"train_on_val": true' in capsys.readouterr().out
    # A resumed run keeps the settings it recorded: a recipe there would be ignored, so it is refused.
    assert run(["train", "--resume", str(tmp_path), "--recipe", "final-fit"]) == 1
    assert "drop MODEL, --source, --recipe and --init-from" in capsys.readouterr().err


def test_the_shipped_final_fit_recipe_changes_only_what_it_names():
    """`--recipe final-fit` on crohme: the chosen recipe, four seeds on train + val in the hour."""
    plain = resolve(SHIPPED_REGISTRY, source="crohme").train
    final = resolve(SHIPPED_REGISTRY, source="crohme", recipe="final-fit").train
    changed = {k for k, v in final.model_dump().items() if plain.model_dump()[k] != v}
    assert changed == {"ensemble", "epochs", "train_on_val", "undo_class_weights"}
    assert (final.ensemble, final.epochs, final.train_on_val) == (4, 15, True)


def test_shipped_crohme_trains_longer_than_the_demo():
    """The demo job stays under 3 minutes; the real set gets the longer schedule."""
    demo, crohme = resolve(SHIPPED_REGISTRY, source="demo"), resolve(SHIPPED_REGISTRY, source="crohme")
    assert crohme.train.epochs > demo.train.epochs
    assert crohme.train.model_dump(exclude={"epochs"}) == demo.train.model_dump(exclude={"epochs"})


def test_bare_plugin_names_get_defaults():
    job = resolve(raw={"data": {"source": "demo"}})  # no [sources] table: the plugin with defaults
    assert job.source.type == "demo"
    model = job.model("notebook-cnn")
    assert model.params == model.component.params()
    with pytest.raises(ConfigError, match="Did you mean 'notebook-cnn'"):
        job.model("notebook-cn")


def test_job_is_immutable_and_serialisable():
    job = resolve(SHIPPED_REGISTRY, source="demo")
    # The registry's [sources.demo] table, validated into the plugin's own params model.
    assert (job.source.section, job.source.component.kind, job.source.component.plugin) == ("sources.demo", "source", "demo")
    assert type(job.source.params).__name__ == "DemoParams" and job.source.params.images_per_class == 40
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.train = None  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="Instance is frozen"):
        job.train.epochs = 1
    with pytest.raises(pydantic.ValidationError, match="Instance is frozen"):
        job.source.params.images_per_class = 1
    assert job.train.epochs == 10 and job.source.params.images_per_class == 40
    data = job.to_dict()
    assert data["source"]["type"] == "demo" and data["train"]["epochs"] == job.train.epochs
    assert job.data_key() == resolve(SHIPPED_REGISTRY, source="demo").data_key()


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("true", True), ("[1, 2]", [1, 2]),
                                         ('"x"', "x"), ("plain words", "plain words")])
def test_parse_value(text, value):
    assert parse_value(text) == value


@pytest.mark.parametrize("assignment, message", [
    ("train.epochs", "expected KEY=VALUE"),
    ("=3", "empty key"),
    ("train.epochs.x=3", "train.epochs is a value, not a table"),
])
def test_bad_overrides(assignment, message):
    raw = {"train": {"epochs": 1}}
    with pytest.raises(ConfigError, match=message):
        apply_override(raw, assignment)
