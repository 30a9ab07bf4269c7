"""Name → entry lookup tables with helpful errors, instead of if/elif chains."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

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
    """An ordered mapping of names to entries of one kind (attack, model, ...). ``fill``, when
    given, is called once before the first lookup (the catalogue loads its entries then)."""

    def __init__(self, kind: str, fill: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._fill = fill

    def fill_with(self, fill: Callable[[], None] | None) -> None:
        self._fill = fill

    def clear(self) -> None:
        self._entries.clear()

    def _filled(self) -> dict[str, T]:
        if self._fill is not None:
            fill, self._fill = self._fill, None
            fill()
        return self._entries

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._filled()[name]
        except (KeyError, TypeError):
            raise UnknownName(self.kind, name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._filled()  # a grid's value may be any TOML value

    def __iter__(self) -> Iterator[str]:
        return iter(self._filled())

    def __len__(self) -> int:
        return len(self._filled())

    def names(self) -> list[str]:
        return list(self._filled())
