"""Plugin discovery: entry points, local files, in-process objects, isolation."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel

from mathsym_zoo import hookimpl
from mathsym_zoo.cli import run
from mathsym_zoo.components import Params
from mathsym_zoo.errors import ConfigError, PluginError
from mathsym_zoo.plugins import PluginSet
from mathsym_zoo.registry import resolve

LOCAL_ARCH = textwrap.dedent(
    '''
    from mathsym_zoo import hookimpl
    from mathsym_zoo.components import Params

    class WideParams(Params):
        width: int = 8

    def build(params, input_shape, num_classes):
        raise NotImplementedError

    @hookimpl
    def register_architectures(register):
        register("local-net", summary="A net from a local file.", params=WideParams, factory=build)
    '''
)

SYNTAX_ERROR = "from mathsym_zoo import hookimpl\ndef oops(:\n    pass\n"

RAISES_IN_HOOK = textwrap.dedent(
    '''
    from mathsym_zoo import hookimpl

    @hookimpl
    def register_architectures(register):
        raise RuntimeError("boom inside the hook")
    '''
)


def write_registry(path, body=""):
    path.write_text(
        textwrap.dedent(
            '''
            [data]
            source = "demo"
            [sources.demo]
            type = "demo"
            '''
        )
        + textwrap.dedent(body)
    )
    return path


class InProcessParams(Params):
    depth: int = 2


class InProcessPlugin:
    """A plugin object registered in-process, the way tests and notebooks do."""

    @hookimpl
    def register_architectures(self, register):
        register("inproc-net", summary="Registered in-process.", params=InProcessParams, factory=lambda p, s, n: None)


def test_builtins_come_from_entry_points():
    plugins = PluginSet()
    assert not plugins.problems
    infos = {i.name: i for i in plugins.plugins()}
    for name in ("kaggle", "archive", "demo", "image_ops", "notebook_cnn", "resnet_lite", "mobilenet_head"):
        assert infos[name].builtin and infos[name].origin.startswith("entry point mathsym_zoo_plugins.")
    assert {"kaggle", "archive", "demo"} <= set(plugins.components["source"])
    assert {"notebook-cnn", "resnet-lite", "mobilenet-head"} <= set(plugins.components["architecture"])
    assert {"grayscale", "resize_pad"} <= set(plugins.components["preprocessor"])


def test_local_plugin_file_appears_in_models_and_check(tmp_path, capsys):
    (tmp_path / "my_plugins").mkdir()
    (tmp_path / "my_plugins" / "my_arch.py").write_text(LOCAL_ARCH)
    reg = write_registry(tmp_path / "registry.toml", '''
        plugin_paths = ["my_plugins/"]
        [models.mine]
        type = "local-net"
        width = 16
    '''.replace("plugin_paths", "xx_plugin_paths"))
    # plugin_paths must come before any table: rebuild the file properly
    reg.write_text('plugin_paths = ["my_plugins/"]\n' + reg.read_text().replace('xx_plugin_paths = ["my_plugins/"]\n', ""))
    job = resolve(reg)
    model = job.model("mine")
    assert model.type == "local-net" and model.params.width == 16
    assert model.component.plugin == "my_arch"

    assert run(["models", "local*", "--registry", str(reg), "--json"]) == 0
    assert '"local-net"' in capsys.readouterr().out


def test_plugins_dir_option(tmp_path, capsys):
    (tmp_path / "extra.py").write_text(LOCAL_ARCH)
    reg = write_registry(tmp_path / "registry.toml", '''
        [models.mine]
        type = "local-net"
    ''')
    assert run(["check", str(reg), "--plugins-dir", str(tmp_path / "extra.py"), "--json"]) == 0
    assert '"local-net"' in capsys.readouterr().out


def test_in_process_plugin_object():
    plugins = PluginSet()
    plugins.register(InProcessPlugin(), name="inproc")
    try:
        assert "inproc-net" in plugins.components["architecture"]
        from mathsym_zoo.api import list_components

        assert [r["name"] for r in list_components("architecture", "inproc*", plugins=plugins)] == ["inproc-net"]
        job = resolve(raw={"data": {"source": "demo"}, "models": {"n": {"type": "inproc-net", "depth": 3}}},
                      plugins=plugins)
        assert job.model("n").params.depth == 3
        assert ("architecture", "inproc-net") in {c for i in plugins.plugins() for c in i.components}
    finally:
        plugins.unregister("inproc")
    assert "inproc-net" not in plugins.components["architecture"]


@pytest.mark.parametrize("body, expected", [
    (SYNTAX_ERROR, "SyntaxError"),
    (RAISES_IN_HOOK, "RuntimeError: boom inside the hook"),
])
def test_broken_plugin_is_reported_and_skipped(tmp_path, capsys, body, expected):
    (tmp_path / "broken.py").write_text(body)
    (tmp_path / "good.py").write_text(LOCAL_ARCH)
    plugins = PluginSet([tmp_path])
    assert [p.plugin for p in plugins.problems] == ["broken"]
    message = plugins.problems[0].message()
    assert expected in message and "broken.py" in message
    assert "local-net" in plugins.components["architecture"]  # the rest keep working

    # The CLI reports it once, on stderr, and carries on.
    assert run(["models", "--plugins-dir", str(tmp_path), "--json"]) == 0
    err = capsys.readouterr().err
    assert err.count("plugin 'broken'") == 1 and expected in err

    # Strict: a hard error with the same message, exit code != 0.
    assert run(["models", "--plugins-dir", str(tmp_path), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "plugin 'broken'" in err and expected in err and "strict" in err


def test_strict_from_environment(tmp_path, monkeypatch):
    (tmp_path / "broken.py").write_text(RAISES_IN_HOOK)
    monkeypatch.setenv("MATHSYM_ZOO_STRICT", "1")
    with pytest.raises(PluginError, match="boom inside the hook"):
        PluginSet([tmp_path])


def test_environment_restricts_plugins(monkeypatch, tmp_path):
    (tmp_path / "my_arch.py").write_text(LOCAL_ARCH)
    monkeypatch.setenv("MATHSYM_ZOO_PLUGINS", "demo,image_ops")
    plugins = PluginSet([tmp_path])
    assert sorted(i.name for i in plugins.plugins()) == ["demo", "image_ops"]
    assert set(plugins.components["source"]) == {"demo"}


def test_duplicate_component_names_both_plugins(tmp_path):
    (tmp_path / "first.py").write_text(LOCAL_ARCH)
    (tmp_path / "second.py").write_text(LOCAL_ARCH)
    with pytest.raises(PluginError) as err:
        PluginSet([tmp_path])
    assert "'local-net' is registered twice" in str(err.value)
    assert "'first'" in str(err.value) and "'second'" in str(err.value)


def test_register_checks_params_have_defaults(tmp_path):
    (tmp_path / "nodefault.py").write_text(textwrap.dedent('''
        from mathsym_zoo import hookimpl
        from mathsym_zoo.components import Params
        class P(Params):
            width: int
        @hookimpl
        def register_architectures(register):
            register("x", summary="x", params=P, factory=print)
    '''))
    plugins = PluginSet([tmp_path])
    assert "every parameter needs a default; missing for width" in plugins.problems[0].error


def test_unknown_component_suggests(tmp_path):
    plugins = PluginSet()
    with pytest.raises(ConfigError) as err:
        plugins.get("architecture", "resnet-light")
    text = str(err.value)
    assert "Did you mean 'resnet-lite'?" in text and "notebook-cnn" in text


def test_missing_plugin_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="plugin path .* does not exist"):
        PluginSet([tmp_path / "nope"])
