"""A registry per kind of thing a user can choose (architectures, methods).

After timm's ``_registry.py``: a decorator registers a factory under a name, and a
failed lookup lists every valid name, so a typo fails at the edge with the fix in view.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from engine.options import Option

T = TypeVar("T", bound=Callable[..., Any])


class RegistryError(KeyError):
    """An unknown name; the message lists the registered ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable.
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: T
    family: str
    paper: str
    options: tuple[Option, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "paper": self.paper,
            "options": [option.describe() for option in self.options],
            **self.extra,
        }


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        *,
        family: str,
        paper: str,
        options: tuple[Option, ...] = (),
        **extra: Any,
    ) -> Callable[[T], T]:
        def decorator(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} `{name}` is registered twice")
            self._entries[name] = Entry(name, factory, family, paper, tuple(options), extra)
            return factory

        return decorator

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"Unknown {self.kind} `{name}`; choose one of: {', '.join(sorted(self._entries))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)
