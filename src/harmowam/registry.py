"""Component registries in the timm manner, filled by pluggy entry points.

``list_experts()`` shows what exists, ``create_expert(name, **kwargs)`` builds one,
and an unknown name raises :class:`UnknownComponentError` listing every registered
name with the distribution that provides it. The same holds for world models,
gates, label strategies and instruction encoders.

Plugins are discovered once, lazily, from the ``harmowam`` entry-point group. A
plugin whose import fails is reported with a warning that names its distribution
and the error; the other plugins still load.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import inspect
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import pluggy

from harmowam import hookspecs

#: kind -> (hook name, human-readable plural)
KINDS: dict[str, tuple[str, str]] = {
    "world_model": ("harmowam_register_world_models", "world models"),
    "expert": ("harmowam_register_experts", "experts"),
    "gate": ("harmowam_register_gates", "gates"),
    "label_strategy": ("harmowam_register_label_strategies", "label strategies"),
    "instruction_encoder": ("harmowam_register_instruction_encoders", "instruction encoders"),
}


class ComponentConfigError(ValueError):
    """A component's config entry with an option its constructor does not take."""


class UnknownComponentError(KeyError):
    """A component name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class PluginLoadWarning(UserWarning):
    """A plugin's entry point could not be imported or registered."""


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    constructor: Callable
    distribution: str  # the installed distribution (or plugin name) that provides it


class _Registry:
    def __init__(self) -> None:
        self._pm: pluggy.PluginManager | None = None
        self._table: dict[str, dict[str, Registration]] | None = None
        self._extra: list[tuple[Any, str]] = []

    # -- discovery ---------------------------------------------------------------------------
    def plugin_manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            pm.add_hookspecs(hookspecs)
            for ep in importlib_metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist is not None else ep.name
                try:
                    plugin = ep.load()
                    pm.register(plugin, name=f"{dist}:{ep.name}")
                except Exception as exc:  # a broken plugin must not take the others down
                    warnings.warn(
                        f"harmowam plugin '{ep.name}' from distribution '{dist}' failed to load "
                        f"({ep.value}): {type(exc).__name__}: {exc}",
                        PluginLoadWarning,
                        stacklevel=2,
                    )
            for plugin, name in self._extra:
                pm.register(plugin, name=name)
            pm.check_pending()  # a misspelt hook name in any plugin is an error here
            self._pm = pm
        return self._pm

    def table(self) -> dict[str, dict[str, Registration]]:
        if self._table is None:
            pm = self.plugin_manager()
            table: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
            for kind, (hook_name, plural) in KINDS.items():
                hook = getattr(pm.hook, hook_name)
                # Hook implementations run last-registered first; reverse so built-ins win ties.
                for impl in reversed(hook.get_hookimpls()):
                    dist = pm.get_name(impl.plugin) or "?"
                    dist = dist.split(":")[0]
                    provided = impl.function() or {}
                    for name, constructor in provided.items():
                        if name in table[kind]:
                            warnings.warn(
                                f"{plural[:-1]} '{name}' from '{dist}' ignored: already registered by "
                                f"'{table[kind][name].distribution}'",
                                PluginLoadWarning,
                                stacklevel=2,
                            )
                            continue
                        table[kind][name] = Registration(kind, name, constructor, dist)
            self._table = table
        return self._table

    # -- public operations -------------------------------------------------------------------
    def register(self, plugin: ModuleType | object, name: str) -> None:
        """Register a plugin object at run time (notebooks, tests): same hooks as an entry point."""
        self._extra.append((plugin, name))
        self.reload()

    def unregister(self, name: str) -> None:
        self._extra = [(p, n) for p, n in self._extra if n != name]
        self.reload()

    def reload(self) -> None:
        """Forget what was discovered; the next look-up scans entry points again."""
        self._pm = None
        self._table = None

    def get(self, kind: str, name: str) -> Registration:
        entries = self.table()[kind]
        if name not in entries:
            plural = KINDS[kind][1]
            known = ", ".join(f"'{r.name}' ({r.distribution})" for r in entries.values()) or "none"
            raise UnknownComponentError(f"unknown {plural[:-1]} '{name}'. Registered {plural}: {known}")
        return entries[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self.table()[kind])


REGISTRY = _Registry()


def register_plugin(plugin: ModuleType | object, name: str) -> None:
    """Register hook implementations without an installed entry point."""
    REGISTRY.register(plugin, name)


def unregister_plugin(name: str) -> None:
    REGISTRY.unregister(name)


def reload_plugins() -> None:
    REGISTRY.reload()


def registrations() -> list[Registration]:
    """Every registered component, for ``harmowam plugins``."""
    return [reg for kind in KINDS for reg in sorted(REGISTRY.table()[kind].values(), key=lambda r: r.name)]


def _create(kind: str, name: str, **kwargs: Any) -> Any:
    constructor = REGISTRY.get(kind, name).constructor
    check_arguments(kind, name, constructor, kwargs)
    return constructor(**kwargs)


def check_arguments(kind: str, name: str, constructor: Any, kwargs: dict[str, Any]) -> None:
    """A misspelt option (``hiden: 64``) is named with what the component accepts, not left to a TypeError."""
    try:
        params = inspect.signature(constructor).parameters
    except (TypeError, ValueError):  # no introspectable signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = [p for p, v in params.items() if p not in ("self", "shapes")
                    and v.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        raise ComponentConfigError(f"{kind} '{name}': unknown option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(repr(u) for u in unknown)}; it accepts {', '.join(accepted)}")


def list_world_models() -> list[str]:
    return REGISTRY.names("world_model")


def create_world_model(name: str, **kwargs: Any) -> Any:
    return _create("world_model", name, **kwargs)


def list_experts() -> list[str]:
    return REGISTRY.names("expert")


def create_expert(name: str, **kwargs: Any) -> Any:
    return _create("expert", name, **kwargs)


def list_gates() -> list[str]:
    return REGISTRY.names("gate")


def create_gate(name: str, **kwargs: Any) -> Any:
    return _create("gate", name, **kwargs)


def list_label_strategies() -> list[str]:
    return REGISTRY.names("label_strategy")


def get_label_strategy(name: str) -> Callable:
    """Label strategies are functions, not constructors: this returns the function itself."""
    return REGISTRY.get("label_strategy", name).constructor


def list_instruction_encoders() -> list[str]:
    return REGISTRY.names("instruction_encoder")


def create_instruction_encoder(name: str, **kwargs: Any) -> Any:
    return _create("instruction_encoder", name, **kwargs)


def component_name(spec: dict[str, Any] | str) -> str:
    """The registered name in a config entry: ``"name"`` or ``{"name": ..., **kwargs}``."""
    if isinstance(spec, str):
        return spec
    if not isinstance(spec, dict) or "name" not in spec:
        raise ComponentConfigError(f"a component spec must be a name or a mapping with a 'name' key, got {spec!r}")
    return spec["name"]


def _options(spec: dict[str, Any] | str) -> dict[str, Any]:
    """A config entry's constructor options: everything but its ``name``."""
    return {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}


def check_component(kind: str, spec: dict[str, Any] | str) -> None:
    """Refuse an unknown name or option now, before expensive work (loading a world model) runs first."""
    name = component_name(spec)
    check_arguments(kind, name, REGISTRY.get(kind, name).constructor, _options(spec))


def build_component(kind: str, spec: dict[str, Any] | str, **extra: Any) -> Any:
    """Build a component from a config entry; ``extra`` adds constructor arguments the caller owns (shapes)."""
    kwargs = _options(spec)
    return _create(kind, component_name(spec), **kwargs, **extra)
