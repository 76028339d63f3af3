import warnings

import pluggy
import pytest

import harmowam
from harmowam.hookspecs import hookimpl
from harmowam.registry import PluginLoadWarning, UnknownComponentError, build_component, registrations, reload_plugins


def test_builtins_and_example_plugin_are_registered():
    assert {"predictive", "reactive", "mlp"} <= set(harmowam.list_experts())
    assert set(harmowam.list_gates()) >= {"process_adaptive", "average", "keyframe_average", "always_predictive", "always_reactive"}
    assert set(harmowam.list_label_strategies()) >= {"gripper_events", "ee_height", "proximity"}
    assert "latent_flow" in harmowam.list_world_models()
    assert "learned" in harmowam.list_instruction_encoders()
    dists = {(r.kind, r.name): r.distribution for r in registrations()}
    assert dists[("expert", "predictive")] == "harmowam"  # built-ins come through the entry point too
    assert dists[("expert", "mlp")] == "harmowam-mlp-expert"


def test_unknown_name_lists_registered_names_and_distributions():
    with pytest.raises(UnknownComponentError) as err:
        harmowam.create_expert("no_such_expert")
    msg = str(err.value)
    assert "no_such_expert" in msg and "'predictive' (harmowam)" in msg and "'mlp' (harmowam-mlp-expert)" in msg
    with pytest.raises(UnknownComponentError, match="registered gates|Registered gates"):
        harmowam.create_gate("nope")


def test_plugin_that_fails_to_import_warns_and_others_still_load(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harmowam]\nbroken = broken_plugin_module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reload_plugins()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            experts = harmowam.list_experts()
        messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
        assert any("broken-plugin" in m and "ModuleNotFoundError" in m for m in messages), messages
        assert {"predictive", "reactive", "mlp"} <= set(experts)
    finally:
        monkeypatch.undo()
        reload_plugins()


def test_misspelt_hook_is_rejected_by_check_pending():
    class Misspelt:
        @hookimpl
        def harmowam_register_expert(self):  # missing the final 's'
            return {}

    harmowam.registry.register_plugin(Misspelt(), "misspelt")
    try:
        with pytest.raises(pluggy.PluginValidationError, match="harmowam_register_expert"):
            harmowam.list_experts()
    finally:
        harmowam.registry.unregister_plugin("misspelt")
    assert "predictive" in harmowam.list_experts()


def test_runtime_plugin_registers_a_gate():
    from harmowam.gates import ConstantGate

    class Plugin:
        @hookimpl
        def harmowam_register_gates(self):
            return {"mostly_predictive": lambda shapes: ConstantGate(shapes, 0.9)}

    harmowam.registry.register_plugin(Plugin(), "mostly")
    try:
        from harmowam.experts import PolicyShapes

        gate = harmowam.create_gate("mostly_predictive", shapes=PolicyShapes())
        assert gate.weight == 0.9
    finally:
        harmowam.registry.unregister_plugin("mostly")


def test_component_spec_errors():
    with pytest.raises(ValueError, match="'name' key"):
        build_component("gate", {"threshold": 0.5})
    from harmowam.experts import PolicyShapes

    gate = build_component("gate", {"name": "process_adaptive", "threshold": 0.7}, shapes=PolicyShapes())
    assert gate.threshold == 0.7
