"""Slurm resources: the grid's ``[slurm]`` table over a cluster profile, and the submitit
parameters (sbatch options) they become."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalgrid.errors import UserError, choices_sentence
from evalgrid.grid.sections import SlurmOptions
from evalgrid.catalogue.options import InvalidOption, option_names, parse_options

SBATCH_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# sbatch options evalgrid sets itself, and the [slurm] key that sets each (None: evalgrid alone)
MANAGED_SBATCH = {"partition": "partition", "account": "account", "qos": "qos", "constraint": "constraint",
                  "gpus-per-task": "gpus_per_task", "cpus-per-task": "cpus_per_task", "mem": "mem_gb",
                  "time": "time_min", "signal": "signal_delay_s", "array": "array_parallelism",
                  "job-name": None, "output": None, "error": None, "dependency": None, "open-mode": None}
PROFILE_DIRS_ENV = "EVALGRID_SLURM_PROFILES"


def parse_slurm_table(raw: Mapping[str, Any], base: SlurmOptions | None = None) -> SlurmOptions:
    """Validate a ``[slurm]`` table (grid or profile) on top of ``base``; raises InvalidOption."""
    raw = dict(raw)
    sbatch = raw.pop("sbatch", {})
    options = parse_options(SlurmOptions, raw, base=base)
    if not isinstance(sbatch, Mapping):
        raise InvalidOption("sbatch", f"expected a table of extra sbatch options (e.g. mail-type = \"END\"), "
                                      f"got {sbatch!r}.")
    extra = dict((base or SlurmOptions()).sbatch)
    for name, value in sbatch.items():
        if not SBATCH_NAME.match(name):
            raise InvalidOption(f"sbatch.{name}", "not an sbatch option name: write it as sbatch spells it "
                                                  "without the dashes, e.g. mail-type, exclusive, nodelist.")
        if name in MANAGED_SBATCH:
            key = MANAGED_SBATCH[name]
            instead = f"set it with the [slurm] key {key!r}" if key else "evalgrid sets it itself"
            raise InvalidOption(f"sbatch.{name}", f"--{name} cannot be given here: {instead}.")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            if value is not True:
                raise InvalidOption(f"sbatch.{name}", f"expected a string or a number (or true for a flag), "
                                                      f"got {value!r}.")
        extra[name] = "" if value is True else str(value)
    return dataclasses.replace(options, sbatch=tuple(sorted(extra.items())))


def profile_dirs() -> list[Path]:
    """Where profile NAMEs are looked up, first match wins."""
    dirs = [Path(d) for d in os.environ.get(PROFILE_DIRS_ENV, "").split(os.pathsep) if d]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    dirs.append(config_home / "evalgrid" / "slurm")
    dirs.append(Path(__file__).resolve().parents[3] / "slurm" / "profiles")  # the source tree's
    return dirs


def available_profiles() -> list[str]:
    return sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.toml")})


def find_profile(name: str, relative_to: Path | None = None) -> Path:
    try:
        return _find_profile(name, relative_to)
    except OSError as error:  # a name too long, a loop of links, no permission on a folder
        raise UserError(f"Slurm profile {name!r} cannot be looked up ({error.strerror or error}).") from None


def _find_profile(name: str, relative_to: Path | None = None) -> Path:
    if name.endswith(".toml") or os.sep in name:
        path = Path(name).expanduser()
        if not path.is_absolute() and relative_to is not None and not path.exists():
            path = relative_to / path
        if path.is_file():
            return path
        raise UserError(f"Slurm profile file {name} does not exist.")
    for folder in profile_dirs():
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    searched = ", ".join(str(d) for d in profile_dirs())
    raise UserError(f"unknown Slurm profile {name!r} (searched {searched}). "
                    f"{choices_sentence(available_profiles())} A profile is a TOML file of [slurm] keys.")


def load_profile(name: str, relative_to: Path | None = None) -> SlurmOptions:
    import tomllib

    path = find_profile(name, relative_to)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UserError(f"{path}: cannot read this Slurm profile: {error}") from None
    table = data.get("slurm", data)  # a profile may be a bare table or hold a [slurm] table
    if "profile" in table:
        raise UserError(f"{path}: profile: a profile cannot name another profile.")
    try:
        return parse_slurm_table(table)
    except InvalidOption as error:
        raise UserError(f"{path}: {error.key}: {error.message} Valid keys: "
                        f"{', '.join(n for n in option_names(SlurmOptions) if n != 'profile')}.") from None


def resolve_resources(grid_options: SlurmOptions, grid_table: Mapping[str, Any], profile: str | None,
                      grid_dir: Path | None = None) -> SlurmOptions:
    """Defaults, then the profile (``profile`` or the grid's ``[slurm] profile``), then the keys
    the grid's ``[slurm]`` table sets."""
    name = profile or grid_options.profile
    if not name:
        return grid_options
    merged = load_profile(name, grid_dir)
    return dataclasses.replace(parse_slurm_table(grid_table, base=merged), profile=name)


def submitit_parameters(options: SlurmOptions, job_name: str) -> dict[str, Any]:
    """``SlurmExecutor.update_parameters`` keywords for one array of ``options``' tasks."""
    parameters: dict[str, Any] = {
        "job_name": job_name, "ntasks_per_node": 1, "time": options.time_min, "cpus_per_task": options.cpus_per_task,
        "mem": _memory(options.mem_gb), "signal_delay_s": options.signal_delay_s,
        "array_parallelism": options.array_parallelism, "stderr_to_stdout": False,
    }
    if options.gpus_per_task:
        parameters["gpus_per_task"] = options.gpus_per_task
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(options, key):
            parameters[key] = getattr(options, key)
    if options.sbatch:
        parameters["additional_parameters"] = {k: (True if v == "" else v) for k, v in options.sbatch}
    return parameters


def _memory(gigabytes: float) -> str:
    return f"{int(gigabytes)}GB" if gigabytes == int(gigabytes) else f"{int(round(gigabytes * 1024))}MB"
