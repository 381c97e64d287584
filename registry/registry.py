"""A generic name -> object registry with exact lookups and helpful errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def closest_match(name: str, choices: Iterable[str]) -> str | None:
    """Return the choice closest to ``name`` (case-insensitive), or None when nothing is close."""
    choices = list(choices)
    lowered = {choice.lower(): choice for choice in choices}
    if str(name).lower() in lowered:
        return lowered[str(name).lower()]
    matches = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    match = closest_match(name, choices)
    return f" Did you mean '{match}'?" if match is not None else ""


def unknown_name_message(where: str, name: Any, choices: Iterable[str]) -> str:
    """Build the one message shape for an unknown name: where, value, valid choices, close match."""
    choices = sorted(choices)
    shown = ", ".join(choices) if len(choices) <= 60 else ", ".join(choices[:60]) + ", ..."
    return f"{where}: unknown name {name!r}. Valid names: {shown}.{did_you_mean(str(name), choices)}"


class Registry:
    """Maps names to objects (classes or functions) for one kind of thing.

    Lookups are exact: an unknown name raises an error that lists the valid names and the
    closest match; registering a different object under a taken name is an error.
    """

    def __init__(self, kind: str, populate: Callable[[Registry], None] | None = None):
        """Create an empty registry.

        Args:
            kind: what the registry holds, for messages ("optimizer", "lr_mode", ...).
            populate: called once, on first use, to add the built-in entries lazily
                (keeps ``import registry`` cheap).
        """
        self.kind = kind
        self._populate = populate
        self._entries_store: dict[str, Any] = {}

    @property
    def _entries(self) -> dict[str, Any]:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)
        return self._entries_store

    def register(self, name: Any = None) -> Any:
        """Register an object. Works as ``@reg.register("name")``, ``@reg.register()`` and ``@reg.register``.

        Args:
            name: the registered name; the object's ``__name__`` when omitted.

        Raises:
            ValueError: the name is already taken by a different object.
        """
        if callable(name) and not isinstance(name, str):
            return self.add(name.__name__, name)

        def decorator(obj: Any) -> Any:
            return self.add(name or obj.__name__, obj)

        return decorator

    def add(self, name: str, obj: Any) -> Any:
        """Register ``obj`` under ``name`` and return ``obj``."""
        existing = self._entries.get(name)
        if existing is not None and not _same_object(existing, obj):
            raise ValueError(
                f"{self.kind} registry: name {name!r} is already registered to "
                f"{_describe(existing)}; cannot register {_describe(obj)} under it. Choose another name."
            )
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> Any:
        """Return the object registered under ``name``.

        Raises:
            KeyError: unknown name; the message lists valid names and the closest match.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(unknown_name_message(f"{self.kind}", name, self._entries)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def items(self) -> list[tuple[str, Any]]:
        """(name, object) pairs in registration order."""
        return list(self._entries.items())


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name. A KeyError for lookups, a ValueError for configuration values."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _same_object(a: Any, b: Any) -> bool:
    if a is b:
        return True
    # Re-executing a module (e.g. a script run twice in one process) re-creates the class.
    return (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
        and getattr(a, "__qualname__", None) is not None
    )


def _describe(obj: Any) -> str:
    module = getattr(obj, "__module__", "?")
    qualname = getattr(obj, "__qualname__", repr(obj))
    return f"{module}.{qualname}"


def import_from_path(path: str, where: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute.

    Args:
        path: the import path, module and attribute separated by a colon.
        where: the configuration key, for the error message.

    Raises:
        ValueError: the path is malformed or cannot be imported.
    """
    import importlib

    if not isinstance(path, str) or ":" not in path:
        raise ValueError(f"{where}: {path!r} is not an import path; expected 'package.module:name'.")
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{where}: cannot import module {module_name!r} from {path!r}: {error}") from error
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{where}: module {module_name!r} has no attribute {attribute!r} (from {path!r}).")
        obj = getattr(obj, part)
    return obj


def resolve_callable(value: Any, where: str) -> Callable:
    """Return ``value`` if callable, or import it from a ``"module:name"`` string.

    Raises:
        ValueError: the string cannot be imported.
        TypeError: the value (or what it names) is not callable.
    """
    obj = import_from_path(value, where) if isinstance(value, str) else value
    if not callable(obj):
        raise TypeError(f"{where}: {value!r} is not callable; give a function or 'package.module:function'.")
    return obj
