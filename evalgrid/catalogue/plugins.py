"""Components from installed packages: the ``evalgrid.components`` entry-point group.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."evalgrid.components"]
    mypackage = "mypackage.entries:ENTRIES"

where ``ENTRIES`` is a sequence of catalogue entries (or a function returning one). Every
process that looks a component up (the CLI, local workers, Slurm tasks) reads the same
installed metadata, so a grid names a plugin's components like built-ins. A plugin that fails
to load, declares something that is not an entry, or reuses a name is a :class:`PluginError`
naming the package.
"""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from evalgrid.catalogue.entries import Entry, Origin
from evalgrid.catalogue.registry import Registry
from evalgrid.errors import UserError

GROUP = "evalgrid.components"


class PluginError(UserError):
    """An installed plugin package that cannot be loaded as it is."""


def load_entries(builtin_modules: Iterable[str], registries: Mapping[type[Entry], Registry]) -> None:
    """Register the built-in entries (each module's ENTRIES), then every plugin's."""
    from evalgrid._version import evalgrid_version

    builtin = Origin("evalgrid", evalgrid_version())
    for module in builtin_modules:
        _register(importlib.import_module(module).ENTRIES, builtin, registries, where=module)
    for point in sorted(metadata.entry_points(group=GROUP), key=lambda p: (p.name, p.value)):
        origin = _origin(point)
        try:
            declared = point.load()
            entries = declared() if callable(declared) else declared
            entries = list(entries)
        except Exception as error:  # noqa: BLE001 - any failure of foreign code is reported with its package
            raise PluginError(f"plugin package {origin} could not be loaded: its entry point {point.name!r} "
                              f"({point.value}) in group {GROUP!r} raised {type(error).__name__}: {error}. Fix "
                              f"the package or uninstall it (pip uninstall {origin.package}).") from None
        _register(entries, origin, registries, where=f"entry point {point.value!r} of package {origin}")


def _register(entries: Iterable[Any], origin: Origin, registries: Mapping[type[Entry], Registry],
              where: str) -> None:
    for entry in entries:
        registry = registries.get(type(entry))
        if registry is None:
            kinds = ", ".join(kind.__name__ for kind in registries)
            raise PluginError(f"{where} declares {entry!r}, which is not a catalogue entry: use one of {kinds} "
                              f"(from evalgrid.catalogue).")
        if entry.name in registry:  # while the catalogue loads, lookups see what is registered so far
            first = registry[entry.name].origin
            raise PluginError(f"{where} declares {entry.kind} {entry.name!r}, which {first} already declares: "
                              f"give it another name.")
        registry.register(entry.name, replace(entry, origin=origin))


def _origin(point: metadata.EntryPoint) -> Origin:
    dist = point.dist
    return Origin(dist.name, dist.version) if dist is not None else Origin(point.module, "unknown version")


@dataclass(frozen=True)
class PluginPackage:
    """An installed package that declares components: recorded with every result."""

    name: str
    version: str
    git_commit: str | None = None  # when installed from a checkout or a git URL
    git_dirty: bool | None = None

    def __str__(self) -> str:
        commit = ""
        if self.git_commit:
            commit = f" (git {self.git_commit[:12]}{', with uncommitted changes' if self.git_dirty else ''})"
        return f"{self.name} {self.version}{commit}"


@functools.cache
def plugin_packages() -> tuple[PluginPackage, ...]:
    """Every installed package with an ``evalgrid.components`` entry point, by name."""
    found: dict[str, PluginPackage] = {}
    for point in metadata.entry_points(group=GROUP):
        if point.dist is not None and point.dist.name not in found:
            found[point.dist.name] = _package(point.dist)
    return tuple(found[name] for name in sorted(found))


def _package(dist: metadata.Distribution) -> PluginPackage:
    """The package's version and, from its PEP 610 ``direct_url.json``, its commit: a VCS
    install records it; a local directory (editable or not) is asked with git."""
    package = PluginPackage(dist.name, dist.version)
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except (OSError, ValueError):
        return package
    if not isinstance(direct, dict):
        return package
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("commit_id"), str):
        return replace(package, git_commit=vcs["commit_id"])
    url = direct.get("url")
    if isinstance(url, str) and url.startswith("file://") and "dir_info" in direct:
        commit, dirty = _git_state(Path(unquote(urlparse(url).path)))
        return replace(package, git_commit=commit, git_dirty=dirty)
    return package


def _git_state(folder: Path) -> tuple[str | None, bool | None]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return commit, (bool(status) if status is not None else None)
