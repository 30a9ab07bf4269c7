"""Which lists of defenses compose. Grid validation asks this of every ``defense = [...]`` it
reads, before any cell runs, so it imports no torch: it reads only the catalogue's entries."""

from __future__ import annotations

from collections.abc import Sequence

from evalgrid.errors import choices_sentence, did_you_mean
from evalgrid.catalogue.options import InvalidOption


def check_composition(names: Sequence[str]) -> None:
    """Raise :class:`InvalidOption` when the named defenses cannot be composed: an unknown name,
    a defense listed twice (so DP-SGD at most once: one privacy mechanism in the local
    training), or a defense whose entry says ``last_in_chain`` (secure aggregation) anywhere but last."""
    from evalgrid.catalogue import DEFENSES

    names = list(names)
    for name in names:
        if name not in DEFENSES:
            raise InvalidOption("", f"unknown defense {name!r} in the composition.{did_you_mean(name, DEFENSES)} "
                                    f"{choices_sentence(DEFENSES)}")
    for index, name in enumerate(names):
        if name in names[:index]:
            raise InvalidOption("", f"defense {name!r} appears twice in the composition {names}; "
                                    "list each defense once (set its options instead).")
    for index, name in enumerate(names):
        if DEFENSES[name].last_in_chain and index != len(names) - 1:
            raise InvalidOption("", f"{name!r} must be the last defense of the composition {names}: it "
                                    "describes what the server receives after every client-side defense.")
