"""Reading grid files: TOML syntax, ``extends`` chains, and where each key came from."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalgrid.errors import GridError


@dataclass
class MergedToml:
    """A grid file with its ``extends`` chain merged, the extending file's keys winning."""

    data: dict[str, Any]
    origins: dict[tuple[str, ...], Path] = field(default_factory=dict)  # key path → file that set it
    files: list[Path] = field(default_factory=list)  # the chain, base first

    def origin(self, *key: str) -> Path:
        """The file that set ``key`` (or its closest parent), for error messages."""
        for depth in range(len(key), 0, -1):
            if key[:depth] in self.origins:
                return self.origins[key[:depth]]
        return self.files[-1]


def read_grid_toml(path: Path) -> MergedToml:
    return _read(Path(path).resolve(), stack=[])


MAX_EXTENDS_DEPTH = 32  # files in one `extends` chain: far more than any grid needs, far less than recursion allows


def _read(path: Path, stack: list[Path]) -> MergedToml:
    if len(stack) >= MAX_EXTENDS_DEPTH:
        raise GridError(str(stack[-1]), "extends", f"the 'extends' chain from {stack[0]} is longer than "
                                                   f"{MAX_EXTENDS_DEPTH} files; merge some of them.")
    if path in stack:
        chain = " -> ".join(str(p) for p in [*stack, path])
        raise GridError(str(stack[-1]), "extends", f"'extends' forms a cycle: {chain}.")
    what = _kind_problem(path)
    if what is not None:
        if stack:
            raise GridError(str(stack[-1]), "extends",
                            f"the base file {str(path)!r} {what} (paths are relative to the extending file).")
        raise GridError(str(path), "", "no such grid file." if what == "does not exist" else f"the grid file {what}.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise _unparsable(path, stack, f"invalid TOML: {err}.") from None
    except UnicodeDecodeError as err:
        raise _unparsable(path, stack, f"not a UTF-8 text file ({err.reason}).") from None
    except RecursionError:
        raise _unparsable(path, stack, "invalid TOML: its arrays or tables are nested too deeply.") from None
    except OSError as err:
        if stack:
            raise GridError(str(stack[-1]), "extends",
                            f"the base file {str(path)!r} cannot be read ({err.strerror or err}).") from None
        raise GridError(str(path), "", f"the grid file cannot be read ({err.strerror or err}).") from None
    base_name = data.get("extends")
    if base_name is None:
        merged = MergedToml(data={})
    elif not isinstance(base_name, str):
        raise GridError(str(path), "extends", f"expected a file path string, got {base_name!r}.")
    else:
        merged = _read((path.parent / base_name).resolve(), [*stack, path])
    _merge_into(merged, data, path, ())
    merged.data.pop("extends", None)
    merged.files.append(path)
    return merged


def _kind_problem(path: Path) -> str | None:
    """None for a regular file; else what it is instead, or why it cannot be looked at."""
    try:
        if path.is_file():
            return None
        return ("is a directory, not a file" if path.is_dir() else
                "is not a regular file" if path.exists() else "does not exist")
    except OSError as error:  # a name too long, a loop of symbolic links, no permission on a folder
        return f"cannot be looked up ({error.strerror or error})"


def _unparsable(path: Path, stack: list[Path], problem: str) -> GridError:
    """The error for a file that is not TOML: about the grid file, or about the base file that
    the last file of ``stack`` extends (named with the extending file and its key)."""
    if stack:
        return GridError(str(stack[-1]), "extends", f"the base file {str(path)!r} is not a grid file: {problem}")
    return GridError(str(path), "", problem)


def _merge_into(target: MergedToml, data: dict[str, Any], source: Path, prefix: tuple[str, ...]) -> None:
    """Deep-merge tables; any other value (lists included) replaces what the base had."""
    node = target.data
    for key in prefix:
        node = node[key]
    for key, value in data.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(node.get(key), dict):
            target.origins[path] = source
            _merge_into(target, value, source, path)
        else:
            node[key] = _copy(value)
            target.origins[path] = source


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
