"""Discover, load and validate implementations registered as entry points.

Two stages, as in flake8's plugin finder: `find_plugins` lists what is installed
(name, distribution, version) without importing anything; `load_plugin` imports one
and checks that it is an `Implementation`. A plugin that fails to load is kept as a
`BrokenPlugin` with its error, so one bad package never hides the others.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import traceback

from harness.implementation import Implementation

ENTRY_POINT_GROUP = "rnn_harness.impls"
OWN_DISTRIBUTION = "rnn-harness"


class DuplicateImplementationError(RuntimeError):
    """Two installed distributions register the same implementation name."""


@dataclasses.dataclass(frozen=True)
class FoundPlugin:
    name: str
    distribution: str
    version: str
    target: str  # "module:attribute", as written in the entry point
    entry_point: importlib.metadata.EntryPoint = dataclasses.field(compare=False, repr=False)

    @property
    def builtin(self) -> bool:
        return _normalize(self.distribution) == _normalize(OWN_DISTRIBUTION)

    @property
    def origin(self) -> str:
        return "built-in" if self.builtin else f"{self.distribution} {self.version}"


@dataclasses.dataclass(frozen=True)
class LoadedPlugin:
    found: FoundPlugin
    implementation: Implementation

    @property
    def name(self) -> str:
        return self.found.name


@dataclasses.dataclass(frozen=True)
class BrokenPlugin:
    found: FoundPlugin
    error: str  # one line: what went wrong
    details: str  # the traceback, for --verbose output and reports

    @property
    def name(self) -> str:
        return self.found.name


@dataclasses.dataclass(frozen=True)
class Registry:
    loaded: dict[str, LoadedPlugin]
    broken: list[BrokenPlugin]

    def implementation(self, name: str) -> Implementation:
        return self.loaded[name].implementation

    @property
    def names(self) -> list[str]:
        return list(self.loaded)


def _normalize(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")


def find_plugins() -> list[FoundPlugin]:
    """Every entry point in our group, sorted by name; no plugin code is imported."""
    found: dict[tuple[str, str, str], FoundPlugin] = {}
    for distribution in importlib.metadata.distributions():
        for entry_point in distribution.entry_points:
            if entry_point.group != ENTRY_POINT_GROUP:
                continue
            plugin = FoundPlugin(
                name=entry_point.name,
                distribution=distribution.metadata["Name"] or "<unknown>",
                version=distribution.version,
                target=entry_point.value,
                entry_point=entry_point,
            )
            # The same distribution can be visible twice on sys.path (an editable
            # install plus a build directory); that is not a collision.
            found.setdefault((plugin.name, _normalize(plugin.distribution), plugin.target), plugin)
    plugins = sorted(found.values(), key=lambda p: (p.name, _normalize(p.distribution)))
    by_name: dict[str, FoundPlugin] = {}
    for plugin in plugins:
        if plugin.name in by_name:
            other = by_name[plugin.name]
            raise DuplicateImplementationError(
                f"implementation name {plugin.name!r} is registered twice: by "
                f"{other.distribution} {other.version} ({other.target}) and by "
                f"{plugin.distribution} {plugin.version} ({plugin.target}). "
                "Uninstall one of them or rename its entry point."
            )
        by_name[plugin.name] = plugin
    return plugins


def load_plugin(found: FoundPlugin) -> LoadedPlugin | BrokenPlugin:
    """Import one plugin and check what it gives us."""
    try:
        loaded = found.entry_point.load()
    except BaseException as error:  # noqa: BLE001 - any import failure is the plugin's
        if isinstance(error, KeyboardInterrupt):
            raise
        return BrokenPlugin(
            found,
            f"importing {found.target} failed: {type(error).__name__}: {error}",
            traceback.format_exc(),
        )
    if not isinstance(loaded, Implementation):
        return BrokenPlugin(
            found,
            f"{found.target} is a {type(loaded).__name__}, not a harness.Implementation; "
            "point the entry point at an Implementation(...) object",
            "",
        )
    if loaded.name != found.name:
        return BrokenPlugin(
            found,
            f"entry point is named {found.name!r} but its Implementation is named "
            f"{loaded.name!r}; the two must match",
            "",
        )
    return LoadedPlugin(found, loaded)


def discover() -> Registry:
    """Find and load every installed implementation."""
    loaded: dict[str, LoadedPlugin] = {}
    broken: list[BrokenPlugin] = []
    for found in find_plugins():
        result = load_plugin(found)
        if isinstance(result, LoadedPlugin):
            loaded[found.name] = result
        else:
            broken.append(result)
    return Registry(loaded, broken)
