"""Name → component lookup tables with helpful errors, instead of if/elif chains."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from evalgrid.errors import UserError, choices_sentence, did_you_mean

T = TypeVar("T")


class UnknownName(UserError, KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __init__(self, kind: str, name: object, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} {name!r}.{did_you_mean(name, choices)} {choices_sentence(choices)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    """An ordered mapping of names to entries of one kind (attack, model, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.kind, name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries  # a grid's value may be any TOML value

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)


@dataclass(frozen=True)
class Component:
    """A registry entry selected by name from a grid: its typed options and its factory.

    ``options`` is a frozen dataclass whose defaults are the paper's preset (see
    :mod:`evalgrid.options`); ``build(options, ...)`` makes the working object;
    ``preflight(options, ...)``, when set, checks local files before anything runs.
    """

    name: str
    options: type
    build: Callable[..., Any]
    summary: str
    preflight: Callable[..., Any] | None = None  # raises UserError before dispatch (missing files)
    describe: Callable[..., Any] | None = None  # cheap public facts without building (datasets: DatasetInfo)

    def __repr__(self) -> str:
        return f"Component({self.name!r}: {self.summary})"
