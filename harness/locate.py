"""How a worker process obtains the implementation its parent is fuzzing: by name.

A factory is not sent to the worker by value. The parent finds the name it can be
reached by, and the worker imports that name, the way the parent got the object in
the first place: the entry point it was loaded from, or a module-level name (an
`Implementation`, a list or dict of them, or the factory itself) in a module the
parent has imported. That works for every factory that works in-process: closures,
classes built at run time, ``functools.partial`` of a lambda. Only an object no name
reaches (built inside a function, or in ``__main__`` of an interactive session) falls
back to pickling, and failing that is an error that says what to do.

The same address writes the import line of a repro script (`import_source`).
"""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import runpy
import sys
from collections.abc import Callable
from typing import Any

from harness.implementation import Implementation

Step = tuple[str, Any]  # ("attr", name) or ("item", index or key)

_IN_WORKER = False
"""True inside a worker process: a campaign started there is a script re-running itself."""


class Unreachable(RuntimeError):
    """No name reaches the implementation and it cannot be pickled."""


@dataclasses.dataclass(frozen=True)
class Address:
    """Where a worker finds the factory: ``how`` is ``entry_point``, ``module``,
    ``main`` (a script or ``-m`` module running as ``__main__``) or ``pickle``."""

    how: str
    name: str = ""  # the entry point's name, the module's name, or the main script's path
    steps: tuple[Step, ...] = ()  # from the module (or the entry point's object) to the factory
    main_is_module: bool = False  # ``python -m name`` rather than ``python path``
    factory: Callable | None = dataclasses.field(default=None, compare=False)  # pickle only

    def describe(self) -> str:
        if self.how == "entry_point":
            return f"entry point {self.name!r}" + _steps_text(self.steps)
        if self.how == "pickle":
            return "the factory itself, pickled"
        origin = self.name if self.how == "module" else f"__main__ ({self.name})"
        return origin + ":" + _steps_text(self.steps).lstrip(".")


def _steps_text(steps: tuple[Step, ...]) -> str:
    return "".join(f".{key}" if kind == "attr" else f"[{key!r}]" for kind, key in steps)


def address_of(implementation: Implementation) -> Address:
    """The name a worker process can obtain ``implementation.factory`` by."""
    from harness.registry import entry_point_name

    factory = implementation.factory
    entry_point = entry_point_name(implementation)
    if entry_point is not None and _still_installed(entry_point):
        return Address("entry_point", entry_point, (("attr", "factory"),))
    found = _by_qualified_name(factory) or _search_modules(implementation, factory)
    if found is not None:
        module_name, steps = found
        if module_name != "__main__":
            return Address("module", module_name, steps)
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            return Address("main", spec.name, steps, main_is_module=True)
        if getattr(main, "__file__", None):
            return Address("main", main.__file__, steps)
    try:
        pickle.dumps(factory)
    except Exception as error:  # noqa: BLE001 - any pickling failure means the same thing
        raise Unreachable(
            f"the factory of {implementation.name!r} ({_label(factory)}) cannot be reached from a worker process: "
            "the worker obtains the implementation by name, and no module-level name leads to it "
            f"(pickling it failed too: {type(error).__name__}: {error}). Make it importable by name: "
            "put the Implementation (or its factory) at module level in an importable module or script "
            "(a list or dict of Implementations is fine), register it as an entry point, or run with --no-isolation."
        ) from None
    return Address("pickle", factory=factory)


def _still_installed(name: str) -> bool:
    """Whether the entry point is still there to load: one that was loaded from a
    distribution since removed from the path (a test's temporary install) is not,
    and a worker must then find the object by its module instead."""
    import importlib.metadata

    from harness.registry import ENTRY_POINT_GROUP

    return bool(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))


def _label(factory) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', type(factory).__name__)}"


def _by_qualified_name(factory) -> tuple[str, tuple[Step, ...]] | None:
    """``module.Qual.Name`` when that is where the factory lives (a module-level class or function)."""
    module_name, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    value = sys.modules.get(module_name)
    steps = tuple(("attr", part) for part in qualname.split("."))
    for _, part in steps:
        value = getattr(value, part, None)
    return (module_name, steps) if value is factory else None


def _search_modules(implementation: Implementation, factory) -> tuple[str, tuple[Step, ...]] | None:
    """A module-level name in any imported module leading to the implementation or
    its factory: the factory's own module first, ``__main__`` last."""
    preferred = getattr(factory, "__module__", None)
    names = sorted(sys.modules, key=lambda name: (name != preferred, name == "__main__"))
    for module_name in names:
        module = sys.modules.get(module_name)
        try:
            namespace = list(vars(module).items())
        except TypeError:
            continue
        for attribute, value in namespace:
            steps = _steps_to_factory(value, implementation, factory)
            if steps is not None:
                return module_name, (("attr", attribute), *steps)
    return None


def _steps_to_factory(value, implementation, factory) -> tuple[Step, ...] | None:
    """From ``value`` to the factory, looking one container deep."""
    # type(), not isinstance(): isinstance reads __class__, which some module-level
    # objects (deprecated torch aliases) turn into a warning.
    if value is factory:
        return ()
    if value is implementation or (issubclass(type(value), Implementation) and value.factory is factory):
        return (("attr", "factory"),)
    if issubclass(type(value), (list, tuple)):
        items = enumerate(value)
    elif issubclass(type(value), dict):
        items = ((key, item) for key, item in value.items() if type(key) in (str, int))
    else:
        return None
    for key, item in items:
        if item is factory:
            return (("item", key),)
        if item is implementation or (issubclass(type(item), Implementation) and item.factory is factory):
            return (("item", key), ("attr", "factory"))
    return None


def resolve(address: Address) -> Callable:
    """In the worker: import the name and return the factory."""
    global _IN_WORKER
    _IN_WORKER = True
    if address.how == "pickle":
        return address.factory
    if address.how == "entry_point":
        from harness.registry import BrokenPlugin, discover

        registry = discover([address.name])
        if address.name not in registry.loaded:
            broken = next(plugin for plugin in registry.broken if plugin.name == address.name)
            raise RuntimeError(broken.error)
        value: Any = registry.implementation(address.name)
    elif address.how == "module":
        value = importlib.import_module(address.name)
    elif "__mp_main__" in sys.modules:
        # multiprocessing has already run the script (or -m module) again under this
        # name, in the forkserver or in this child: its `if __name__ == "__main__":` block did not run.
        value = sys.modules["__mp_main__"]
    else:
        if address.main_is_module:
            namespace = runpy.run_module(address.name, run_name="__mp_main__", alter_sys=True)
        else:
            namespace = runpy.run_path(address.name, run_name="__mp_main__")
        value = _Namespace(namespace)
    for kind, key in address.steps:
        value = getattr(value, key) if kind == "attr" else value[key]
    return value


class _Namespace:
    def __init__(self, namespace: dict) -> None:
        self.__dict__.update(namespace)


def refuse_campaign_in_worker() -> None:
    """Called when a campaign starts: inside a worker it means the script that defines
    the implementation started fuzzing again while the worker imported it (multiprocessing
    marks that bootstrapping phase with ``_inheriting``)."""
    import multiprocessing

    if _IN_WORKER or getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "the script that defines the implementation starts a campaign when it is imported: the worker "
            "process runs the script again to find the implementation by name, and must not fuzz again. "
            'Put the call that starts fuzzing under `if __name__ == "__main__":`.'
        )


def import_source(address: Address, fallback_factory) -> str:
    """Python lines that bind ``candidate_factory`` the way `resolve` reaches it, for a repro script."""
    if address.how == "entry_point":
        return (
            "from importlib.metadata import entry_points\n\n"
            f"candidate_factory = entry_points(group='rnn_harness.impls')[{address.name!r}].load()"
            + _steps_text(address.steps)
        )
    if address.how == "module" and address.steps and address.steps[0][0] == "attr":
        first = address.steps[0][1]
        return f"from {address.name} import {first}\n\ncandidate_factory = {first}{_steps_text(address.steps[1:])}"
    if address.how == "main":
        runner = f"runpy.run_module({address.name!r}" if address.main_is_module else f"runpy.run_path({address.name!r}"
        first = address.steps[0][1]
        return f"import runpy\n\ncandidate_factory = {runner}, run_name='__mp_main__')[{first!r}]{_steps_text(address.steps[1:])}"
    module, qualname = getattr(fallback_factory, "__module__", "?"), getattr(fallback_factory, "__qualname__", "?")
    return f"# {module}.{qualname} is not importable by name; replace this line with your own import\nfrom {module} import {qualname} as candidate_factory"
