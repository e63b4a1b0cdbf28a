"""Discover, load and validate implementations registered as entry points.

Two stages, as in flake8's plugin finder: `find_plugins` lists what is installed
(name, distribution, version) without importing anything; `load_plugin` imports one
and checks that it is an `Implementation`. A plugin that fails to load is kept as a
`BrokenPlugin` with its error, so one bad package never hides the others; one whose
import does not finish within `import_timeout()` seconds is broken too. `discover`
imports only the plugins it is asked for, so ``fuzz --impl X`` never runs another
plugin's import-time code.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import threading
import traceback
from collections.abc import Iterable

from harness.implementation import Implementation

ENTRY_POINT_GROUP = "rnn_harness.impls"
OWN_DISTRIBUTION = "rnn-harness"
IMPORT_TIMEOUT_VARIABLE = "RNN_HARNESS_IMPORT_TIMEOUT"
DEFAULT_IMPORT_TIMEOUT = 60.0
"""Seconds a plugin's import may take before it is reported broken and the others go on."""

_LOADED_FROM: dict[int, tuple[Implementation, str]] = {}
"""id(Implementation) -> (that object, its entry point's name), for every plugin loaded
in this process: how a worker process obtains the same implementation (see
`entry_point_name`)."""


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


class UnknownImplementationError(LookupError):
    """A name was asked for that no installed distribution registers."""


@dataclasses.dataclass(frozen=True)
class Registry:
    loaded: dict[str, LoadedPlugin]
    broken: list[BrokenPlugin]
    found: dict[str, FoundPlugin] = dataclasses.field(default_factory=dict)
    """Every installed plugin by name, loaded or not (`discover` with names loads only those)."""

    def implementation(self, name: str) -> Implementation:
        return self.loaded[name].implementation

    @property
    def names(self) -> list[str]:
        return list(self.loaded)

    @property
    def installed_names(self) -> list[str]:
        """Every installed name, whether or not its plugin was imported."""
        return sorted(set(self.found) | set(self.loaded) | {plugin.name for plugin in self.broken})


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


def import_timeout() -> float:
    """Seconds one plugin's import may take: $RNN_HARNESS_IMPORT_TIMEOUT, default 60."""
    try:
        return float(os.environ.get(IMPORT_TIMEOUT_VARIABLE, DEFAULT_IMPORT_TIMEOUT))
    except ValueError:
        return DEFAULT_IMPORT_TIMEOUT


def _load_entry_point(found: FoundPlugin, timeout: float):
    """``found.entry_point.load()`` in a daemon thread, so an import that sleeps or
    blocks costs at most ``timeout`` seconds. Returns (object, None) or (None, error)."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["object"] = found.entry_point.load()
        except BaseException as error:  # noqa: BLE001 - any import failure is the plugin's
            outcome["error"] = (error, traceback.format_exc())

    thread = threading.Thread(target=target, name=f"rnn-harness import {found.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None, (TimeoutError(f"the import did not finish within {timeout:g}s (set ${IMPORT_TIMEOUT_VARIABLE} to wait longer)"), "")
    if "error" in outcome:
        return None, outcome["error"]
    return outcome["object"], None


def load_plugin(found: FoundPlugin, *, timeout: float | None = None) -> LoadedPlugin | BrokenPlugin:
    """Import one plugin and check what it gives us."""
    loaded, failure = _load_entry_point(found, import_timeout() if timeout is None else timeout)
    if failure is not None:
        error, details = failure
        if isinstance(error, KeyboardInterrupt):
            raise error
        return BrokenPlugin(found, f"importing {found.target} failed: {type(error).__name__}: {error}", details)
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
    _LOADED_FROM[id(loaded)] = (loaded, found.name)
    return LoadedPlugin(found, loaded)


def entry_point_name(implementation: Implementation) -> str | None:
    """The entry point this very object was loaded from in this process, if any."""
    entry = _LOADED_FROM.get(id(implementation))
    return entry[1] if entry is not None and entry[0] is implementation else None


def discover(names: Iterable[str] | None = None, *, builtin_only: bool = False) -> Registry:
    """Find every installed implementation and load the ones asked for: those in
    ``names`` (an unknown one raises `UnknownImplementationError` naming what is
    installed), else the built-ins with ``builtin_only``, else all of them."""
    everything = {plugin.name: plugin for plugin in find_plugins()}
    if names is not None:
        wanted = list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in everything]
        if unknown:
            raise UnknownImplementationError(
                f"unknown implementation {unknown[0]!r}; registered: {', '.join(everything) or 'none'}. "
                "Run `python -m harness list` to see them."
            )
        chosen = [everything[name] for name in wanted]
    else:
        chosen = [plugin for plugin in everything.values() if plugin.builtin or not builtin_only]
    loaded: dict[str, LoadedPlugin] = {}
    broken: list[BrokenPlugin] = []
    for found in chosen:
        result = load_plugin(found)
        if isinstance(result, LoadedPlugin):
            loaded[found.name] = result
        else:
            broken.append(result)
    return Registry(loaded, broken, everything)
