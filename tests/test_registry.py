"""The registry: names, errors for unknown and duplicate names, entry-point plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from versanet import registry


def test_builtin_names_and_descriptions() -> None:
    registry.load_builtin()
    assert {"SmallVideoCNN", "SmallAudioCNN", "EmbeddingTextEncoder"} <= set(registry.names("encoder"))
    assert {"FAC", "Shared", "Disjoint", "ModalityGraph"} <= set(registry.names("graph"))
    assert registry.describe(registry.get("head", "MLPBNHead")).startswith("Linear -> BN -> ReLU")


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(registry.RegistryError, match=r"unknown encoder 'SmallVideoCN'; did you mean: SmallVideoCNN"):
        registry.get("encoder", "SmallVideoCN")
    with pytest.raises(registry.RegistryError, match="unknown registry kind 'encoders'"):
        registry.get("encoders", "SmallVideoCNN")


def test_registering_a_different_class_under_a_taken_name_fails() -> None:
    first = type("DuplicateProbe", (), {"__module__": "pkg_one"})
    second = type("DuplicateProbe", (), {"__module__": "pkg_two"})
    registry.register("head")(first)
    try:
        with pytest.raises(registry.RegistryError, match=r"head 'DuplicateProbe' is registered twice: by pkg_one.DuplicateProbe and by pkg_two.DuplicateProbe"):
            registry.register("head")(second)
        registry.register("head")(first)  # the same class again (a module reload) is fine
    finally:
        registry._REGISTRY["head"].pop("DuplicateProbe")


def _fake_distribution(root: Path, name: str, module: str, body: str) -> None:
    """A real installed-distribution layout (dist-info + entry_points.txt) that importlib.metadata reads."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[versanet.plugins]\n{name} = {module}\n")


def test_plugins_load_and_a_failing_plugin_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "goodplug", "goodplug_mod", """
        from versanet.registry import register
        from versanet.heads import LinearHead

        @register("head")
        class GoodPluginHead(LinearHead):
            '''A head from a plugin.'''
    """)
    _fake_distribution(tmp_path, "badplug", "badplug_mod", "raise RuntimeError('missing CUDA toolkit')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_LOADED_PLUGINS", dict(registry._LOADED_PLUGINS))
    try:
        with pytest.raises(registry.PluginLoadError, match=r"plugin 'badplug' \(badplug_mod, from badplug\) failed to import: RuntimeError: missing CUDA toolkit"):
            registry.load_plugins()
        assert "GoodPluginHead" in registry.names("head")
        with pytest.warns(UserWarning, match="badplug"):
            loaded = registry.load_plugins(strict=False)
        assert loaded["goodplug"] == "goodplug_mod"
    finally:
        registry._REGISTRY["head"].pop("GoodPluginHead", None)
        sys.modules.pop("goodplug_mod", None)
        sys.modules.pop("badplug_mod", None)


def test_example_plugin_is_installed_and_registered() -> None:
    """plugins/versanet-motion is pip-installed by the README's test command."""
    loaded = registry.load_plugins()
    assert loaded.get("motion") == "versanet_motion"
    assert "MotionCNN" in registry.names("encoder") and "MotionTransform" in registry.names("transform")
