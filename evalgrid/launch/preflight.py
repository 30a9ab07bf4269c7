"""Checks that run before anything is dispatched or written: local data and weights exist,
and every model can be built for its data (resolution, gradient source).

Every missing input is reported at once, with the checks that do not need it still made
(:mod:`evalgrid.launch.findings`): a machine without the papers' data learns all it lacks in one go.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from operator import attrgetter
from typing import Any

from evalgrid.grid.cell import CellConfig
from evalgrid.errors import MissingInput, UserError
from evalgrid.grid import Grid
from evalgrid.launch.findings import Findings


# The checks read everything of a cell but its seed (which only seeds the weights, the data and
# the attack): the cells of a grid that differ only in their seeds are checked once.
CHECKED_FIELDS = tuple(f.name for f in dataclasses.fields(CellConfig) if f.name != "seed")


def check_ready(grid: Grid) -> None:
    """Raise a UserError naming everything missing, and what is impossible, and how to fix it:
    the one message `plan --check` and `run` give."""
    findings = find_problems(grid)
    if findings:
        raise UserError(findings.report())


def find_problems(grid: Grid) -> Findings:
    """Every input of ``grid`` missing on this machine, and its wrong settings (each group of
    checks stops at its first), without raising."""
    findings = Findings(grid.source)
    cells = distinct_setups(grid.cells)
    with findings.group():
        _check_implementations(grid, cells)
    if findings.wrong:  # the other checks would run the code that cannot be imported
        return findings
    with findings.group(), naming(grid, "factors.dataset"):
        _check_datasets(grid, cells, findings)
    with findings.group():
        _check_models(grid, cells, findings)
    with findings.group():
        _check_metric_image_sizes(grid, cells, findings)
    with findings.group():
        _check_weights(grid, findings)
    return findings


def _check_weights(grid: Grid, findings: Findings) -> None:
    """The pretrained weights the metrics need (LPIPS' AlexNet), each file reported on its own."""
    from evalgrid.metrics import required_weights
    from evalgrid.models import weights

    for name in dict.fromkeys(required_weights(grid.metrics)):
        with naming(grid, "metrics"):
            findings.attempt("metrics", weights.require_weights, [name])


def _check_implementations(grid: Grid, cells: list[CellConfig]) -> None:
    """Every implementation the grid's components and metrics name can be imported (a plugin's
    misspelt ``build`` fails here, naming its package, not in every cell)."""
    from evalgrid.catalogue import METRICS, Ref
    from evalgrid.grid.factors import FACTORS

    used: dict[tuple[str, str], object] = {}
    for cell in cells:
        for name in FACTORS:
            factor = FACTORS[name]
            if getattr(factor, "registry", None) is None:
                continue
            value = getattr(cell, name)
            if value is None:  # an absent factor (no prior)
                continue
            for choice in getattr(value, "steps", (value,)):
                used.setdefault((f"factors.{name}", choice.name), factor.registry[choice.name])
    for name in grid.metrics:
        used.setdefault(("metrics", name), METRICS[name])
    for (key, name), entry in used.items():
        for field in dataclasses.fields(entry):
            target = getattr(entry, field.name)
            if not isinstance(target, Ref):
                continue
            try:
                target.resolve()
            except Exception as error:  # noqa: BLE001 - foreign code: any failure to import is reported
                raise UserError(f"{grid.source}: {key}: {entry.kind} {name!r} (from {entry.origin}) names "
                                f"{field.name} = {target.target!r}, which cannot be imported: "
                                f"{type(error).__name__}: {error}. Fix or reinstall that package.") from None


@contextmanager
def naming(grid: Grid, key: str) -> Iterator[None]:
    """A component's UserError (which knows its file or option, not the grid) prefixed with the
    grid file and the key that chose the component."""
    try:
        yield
    except MissingInput:  # collected as such, under its key (Findings.attempt)
        raise
    except UserError as error:
        if str(error).startswith(str(grid.source)):
            raise
        raise UserError(f"{grid.source}: {key}: {error}") from None
    except OSError as error:  # a path the grid names: too long, a loop of links, no permission
        if error.filename is None:
            raise
        raise UserError(f"{grid.source}: {key}: {error.filename} cannot be used ({error.strerror or error}).") from None


def distinct_setups(cells: Iterable[CellConfig]) -> list[CellConfig]:
    """The first cell of each distinct config apart from the seed (:data:`CHECKED_FIELDS`), in grid order.

    A grid's cells share their values (the same objects), so cells are first told apart by the
    identity of those values, which costs no hashing of options; equal values held by different
    objects are then merged by equality."""
    read = attrgetter(*CHECKED_FIELDS)
    by_identity: dict[tuple[int, ...], CellConfig] = {}
    for cell in cells:
        by_identity.setdefault(tuple(map(id, read(cell))), cell)
    by_value: dict[tuple[Any, ...], CellConfig] = {}
    for cell in by_identity.values():
        by_value.setdefault(read(cell), cell)
    return list(by_value.values())


def _check_metric_image_sizes(grid: Grid, cells: list[CellConfig], findings: Findings) -> None:
    """A metric with a smallest image side (SSIM's window, LPIPS' AlexNet) against every
    dataset and resolution of the grid: refused here rather than failing every cell."""
    from evalgrid.catalogue import METRICS

    for dataset, resolution in dict.fromkeys((cell.dataset, cell.resolution) for cell in cells):
        info = _dataset_info(grid, dataset, resolution, findings)
        if info is None:
            continue
        side = info.resolution
        for name in grid.metrics:
            smallest = METRICS[name].min_image_size
            if side < smallest:
                raise UserError(f"{grid.source}: metrics: {name!r} needs images of at least {smallest}x{smallest} "
                                f"pixels, but dataset {dataset} at resolution {resolution or 'native'} gives "
                                f"{side}x{side}: raise the dataset's or the grid's resolution, or drop {name!r} "
                                f"from metrics.")


def _needs_other_splits(cell) -> bool:
    """Stages that train use the train split; metrics that measure on the test split, that one."""
    from evalgrid.catalogue import METRICS, STAGES

    return STAGES[cell.stage.name].trains or any(METRICS[name].needs_test_split for name in cell.metrics)


def _check_datasets(grid: Grid, cells: list[CellConfig], findings: Findings) -> None:
    """Every split a cell reads is there and valid; the victims' split holds each cell's batch
    (times its secure-aggregation peers), which would otherwise fail every such cell at run.
    A split whose files are missing or damaged is recorded, and the checks that count its images
    skipped."""
    from evalgrid.catalogue import DATASETS

    sizes: dict[tuple[str, Any], int | None] = {}  # images per split (None: missing), each split read once

    def split_size(entry, options: Any, key: str = "factors.dataset") -> int | None:
        """The split's image count from its preflight (which checks its files), or, for a
        dataset without files to check (shipped with a package), from building it."""
        if (entry.name, options) not in sizes:
            count = None
            with findings.group(), naming(grid, key):  # a damaged split hides no other split's problem
                count = findings.attempt(key, entry.preflight if entry.preflight is not None
                                         else lambda *args: len(entry.build(*args)), options, grid.data_root)
            if count is None:
                findings.skip(f"whether dataset {entry.name}'s splits hold the batches, shards and prior data "
                              f"(their image counts)")
            sizes[(entry.name, options)] = count
        return sizes[(entry.name, options)]

    for cell in cells:
        choice = cell.dataset
        entry = DATASETS[choice.name]
        variants = [choice.options]
        if _needs_other_splits(cell) and hasattr(choice.options, "split"):
            variants += [dataclasses.replace(choice.options, split=s) for s in ("train", "test")]
        if entry.preflight is not None:
            for options in variants:
                split_size(entry, options)
        victims = split_size(entry, choice.options)
        if victims is not None:
            _check_victims_fit(grid, cell, victims)
            _check_heterogeneity_fits(grid, cell, victims)
        _check_federation_fits(grid, cell, lambda options: split_size(entry, options))
        _check_prior_data(grid, cell, split_size)


def _check_prior_data(grid: Grid, cell: CellConfig, split_size) -> None:
    """A prior that evalgrid trains has images in its auxiliary split (the victims' other split,
    or another dataset's)."""
    from evalgrid.catalogue import DATASETS
    from evalgrid.priors.request import is_trained, prior_request

    request = prior_request(cell)
    if request is None or not is_trained(request):
        return
    with naming(grid, "factors.prior"):
        size = split_size(DATASETS[request.auxiliary.name], request.auxiliary.options, "factors.prior")
        if size is not None and size < 1:
            raise UserError(f"prior {request.prior} would train on {request.auxiliary.name} "
                            f"({request.auxiliary_split_note()}), which has no images.")


def _check_federation_fits(grid: Grid, cell: CellConfig, split_size) -> None:
    """A trained stage's clients get shards of its training split (evalgrid.fl.partition): the
    split must hold ``clients`` shards, which would otherwise fail every such cell at run."""
    from evalgrid.fl.partition import shard_size
    from evalgrid.catalogue import STAGES

    with naming(grid, "factors.stage"):
        federation = STAGES[cell.stage.name].build(cell.stage.options).federation
    if federation is None:
        return
    options = cell.dataset.options
    train = dataclasses.replace(options, split="train") if hasattr(options, "split") else options
    size = split_size(train)
    if size is None:  # its files are missing (recorded)
        return
    try:
        shard_size(size, federation.clients, federation.samples_per_client)
    except ValueError as error:
        raise UserError(f"{grid.source}: factors.stage: {cell.stage} on dataset {cell.dataset}: {error}; lower "
                        f"clients or samples_per_client.") from None


def _check_victims_fit(grid: Grid, cell: CellConfig, size: int) -> None:
    """The victims' split (``size`` images) holds the cell's batch times its secure-aggregation peers."""
    from evalgrid.defenses.chain import DefenseChain

    choice = cell.dataset
    clients = DefenseChain.from_choices(cell.defense.steps).aggregated_clients
    needed = cell.batch_size * clients
    if needed > size:
        peers = f" x {clients} clients (secure aggregation)" if clients > 1 else ""
        raise UserError(f"{grid.source}: factors.batch_size: {cell.batch_size}{peers} needs {needed} distinct images, "
                        f"but dataset {choice} has {size} in the split the victims are drawn from; lower "
                        f"batch_size or pick a larger dataset or split.")


def _check_heterogeneity_fits(grid: Grid, cell: CellConfig, size: int) -> None:
    """Under a heterogeneity, each participant's batch is drawn from its local dataset: the
    heterogeneity's preflight refuses a batch larger than that shard (and shards the victims'
    split of ``size`` images cannot give)."""
    from evalgrid.catalogue import HETEROGENEITIES
    from evalgrid.defenses.chain import DefenseChain

    if cell.heterogeneity is None:
        return
    check = HETEROGENEITIES[cell.heterogeneity.name].preflight
    if check is None:
        return
    clients = DefenseChain.from_choices(cell.defense.steps).aggregated_clients
    try:
        check(cell.heterogeneity.options, size, clients, cell.batch_size)
    except UserError as error:
        raise UserError(f"{grid.source}: factors.heterogeneity: {cell.heterogeneity} with batch_size "
                        f"{cell.batch_size} on dataset {cell.dataset}: {error}") from None


def _dataset_info(grid: Grid, dataset, resolution: int, findings: Findings):
    """The dataset's public facts (:func:`describe_dataset`: its catalogue entry knows most
    without reading a file), or None when they come from its files and those are missing."""
    from evalgrid.evaluation.building import describe_dataset

    with naming(grid, "factors.dataset"):
        info = findings.attempt("factors.dataset", describe_dataset, dataset, resolution, grid.data_root)
    if info is None:
        findings.skip(f"the models on dataset {dataset} and their gradient sources, attacks, priors, metrics and "
                      f"checkpoints' fit (its image shape and classes are read from its files)")
    return info


def _check_models(grid: Grid, cells: list[CellConfig], findings: Findings) -> None:
    """Build every (model, data shape) on the meta device: no memory, no time, but the same
    errors as a real build (too small images); check that its smallest train-mode batch passes
    (one small CPU forward), the gradient sources it names and that its init's files exist and
    fit it (a checkpoint's keys and shapes). A dataset whose shape needs its missing files is
    skipped, and so is a missing init file's fit."""
    from evalgrid.models.fitting import check_batch_fits
    from evalgrid.models.gradient_source import parameter_selection

    infos = {}  # (dataset, resolution) -> its DatasetInfo, None when its files are missing
    networks = {}  # (dataset, resolution, model) -> the model on the meta device, built once
    for key in dict.fromkeys((cell.dataset, cell.resolution, cell.model, cell.gradient_source,
                              _smallest_training_batch(cell), cell.init) for cell in cells):
        dataset, resolution, model, source, smallest, init = key
        if (dataset, resolution) not in infos:
            infos[(dataset, resolution)] = _dataset_info(grid, dataset, resolution, findings)
        info = infos[(dataset, resolution)]
        if info is None:  # no model to fit the init to: only whether its files are there
            with naming(grid, "factors.init"):
                findings.attempt("factors.init", _check_init, grid, init, model, None)
            continue
        network = networks.get((dataset, resolution, model))
        if network is None:
            with naming(grid, "factors.model"):
                network = networks[(dataset, resolution, model)] = _meta_model(grid, model, info)
        with naming(grid, "factors.init"):
            findings.attempt("factors.init", _check_init, grid, init, model, network)
        if smallest:
            with naming(grid, "factors.model"):
                check_batch_fits(model.name, model.options, info, smallest)
        if source != "all":
            try:
                parameter_selection(network, source)
            except UserError as err:
                raise UserError(f"{grid.source}: factors.gradient_source: {err}") from None
    _check_attacks(grid, cells, infos, networks)
    _check_priors(grid, cells, infos, findings)


def _check_priors(grid: Grid, cells: list[CellConfig], infos: dict, findings: Findings) -> None:
    """Each prior fits the victims' images (its preflight: a generator's side, a checkpoint's
    file and shapes); its auxiliary data is one of the splits :func:`_check_datasets` checks."""
    from evalgrid.catalogue import PRIORS
    from evalgrid.priors.request import prior_request

    for request in dict.fromkeys(filter(None, map(prior_request, cells))):
        entry = PRIORS[request.prior.name]
        info = infos[(request.victims, request.resolution)]
        if entry.preflight is not None and info is not None:
            with naming(grid, "factors.prior"):
                findings.attempt("factors.prior", entry.preflight, request.prior.options, info)


def _check_attacks(grid: Grid, cells: list[CellConfig], infos: dict, networks: dict) -> None:
    """Each attack whose catalogue entry has a preflight, against every model and data it meets
    (``networks``: the models :func:`_check_models` built on the meta device): an attack that
    needs, say, a linear first layer refuses the grid here instead of failing each such cell."""
    from evalgrid.catalogue import ATTACKS

    for dataset, resolution, model, attack in dict.fromkeys(
            (cell.dataset, cell.resolution, cell.model, cell.attack) for cell in cells):
        check = ATTACKS[attack.name].preflight
        if check is not None and infos[(dataset, resolution)] is not None:
            with naming(grid, "factors.attack"):
                check(attack.options, networks[(dataset, resolution, model)], infos[(dataset, resolution)])


# Parameters a model may have: ViT-L/16 has 0.3 billion; 4 billion float32 weights take 16 GB
# before the gradients, the double-backward graph and the optimizer's state. The bytes of its
# parameters and buffers (BatchNorm statistics, ...) as built are bounded alike.
MAX_MODEL_PARAMETERS = 4_000_000_000
MAX_MODEL_BYTES = 16 * 2**30


def _meta_model(grid: Grid, model, info):
    """The model built on the meta device (shapes, no memory), refused when it cannot be built
    or is larger than any GPU could attack."""
    import torch

    from evalgrid.catalogue import MODELS

    try:
        with torch.device("meta"):
            network = MODELS[model.name].build(model.options, info)
    except (RuntimeError, OverflowError, ValueError, MemoryError) as error:
        detail = str(error).strip().splitlines()
        raise UserError(f"{grid.source}: factors.model: {model} cannot be built for images of {info.resolution}x"
                        f"{info.resolution} ({type(error).__name__}: {detail[0][:200] if detail else ''}); check its "
                        f"size options.") from None
    count = sum(parameter.numel() for parameter in network.parameters())
    size = sum(tensor.numel() * tensor.element_size() for tensor in [*network.parameters(), *network.buffers()])
    if count > MAX_MODEL_PARAMETERS or size > MAX_MODEL_BYTES:
        raise UserError(f"{grid.source}: factors.model: {model} has {count:,} parameters ({size / 2**30:,.1f} GiB with "
                        f"its buffers), more than evalgrid's limit of {MAX_MODEL_PARAMETERS:,} parameters and "
                        f"{MAX_MODEL_BYTES / 2**30:.0f} GiB; lower its width or size options.")
    return network


def _check_init(grid: Grid, init, model, network) -> None:
    """The init's local files exist and fit ``network`` (the model built for the cell's data;
    None: only that they exist)."""
    from evalgrid.catalogue import INITS

    entry = INITS[init.name]
    if entry.preflight is not None:
        entry.preflight(init.resolved().options, model.name, model.options, network)


def _smallest_training_batch(cell) -> int:
    """The fewest samples one train-mode forward pass of the victim sees (BatchNorm needs more
    than one value per channel); 0 when its BatchNorm runs in eval mode."""
    import torch

    from evalgrid.defenses.chain import DefenseChain
    from evalgrid.catalogue import LOCAL_TRAININGS

    training = LOCAL_TRAININGS[cell.local_training.name].build(cell.local_training.options, cell.batch_size)
    if training.bn_mode != "train":
        return 0
    if DefenseChain.from_choices(cell.defense.steps).private_gradients(torch.Generator()) is not None:
        return 1  # DP-SGD forwards every sample alone
    return min(chunk.stop - chunk.start for chunk in training.chunks(cell.batch_size))
