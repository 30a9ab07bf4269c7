"""One cell, end to end: the global model at the cell's training stage, the victim's round
(local training, defenses, secure-aggregation peers: fl/client.py), the attacker's T trials
from the :class:`ServerView` alone, each scored against the private samples; then the
model's utility and smoothness metrics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from evalgrid.grid.cell import CellConfig
from evalgrid.errors import OutputFull, storage_full
from evalgrid.metrics.scoring import ModelMetricInputs, Scores, score
from evalgrid.evaluation.building import load_dataset
from evalgrid.store.atomic import atomic_write_bytes, atomic_write_text
from evalgrid.store.cell_progress import CellProgressWriter, start_progress
from evalgrid.store.curves import curve_csv
from evalgrid.store.layout import CURVE_FILE, OutputDir
from evalgrid.store.results import empty_row, write_result
from evalgrid.evaluation.checkpoint import AttackProgress, CellCheckpoint
from evalgrid.evaluation.context import CellContext, CellSummary, device_label, resolve_device
from evalgrid.evaluation.convergence import Probe
from evalgrid.fl.threat_model import ClientData, Reconstruction, ServerView
from evalgrid.evaluation.packing import default_stack_trials, device_name
from evalgrid.evaluation.trials import run_trials


def evaluate(cell: CellConfig, context: CellContext, watch: CellProgressWriter | None = None
             ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run the cell; return the metric fields of its row and its artifacts (file name → bytes):
    :func:`trial_artifacts` and, unless ``context.curve_points`` is 0, the convergence record
    curve.csv (evalgrid/store/curves.py). ``watch``: the cell's progress file, if any."""
    prepared = prepare(cell, context)
    checkpoint = cell_checkpoint(cell, context)
    progress = checkpoint.load() or AttackProgress()
    stack = default_stack_trials(cell.trials, device_name(prepared.device), context.stack_trials or None)
    reconstructions = run_trials(cell.attack.name, cell.attack.options, prepared.view, cell.seed, cell.trials,
                                 progress, checkpoint.save, stack, context.speedups,
                                 curve_points=context.curve_points, probe=prepared.probe(), watch=watch)
    if watch is not None:
        watch.phase("scoring")
    return outcome(prepared, context, reconstructions, progress)


@dataclass(frozen=True, eq=False)  # holds a model and tensors: compared by identity
class PreparedCell:
    """A cell up to its attack: the global model at the cell's training stage, the victim's
    round (fl/client.py) and the attacker's :class:`ServerView` of it."""

    cell: CellConfig
    device: torch.device
    info: Any  # the dataset's DatasetInfo (its normalisation)
    request: Any  # the StageRequest of the attacked global model
    stage: Any  # its StageRecord (round, test accuracy)
    round: Any  # the victim's VictimRound: its private batch, local training, defenses
    view: ServerView
    prior_key: str  # the adversary prior's cache key ("" for none or a file)

    def probe(self) -> Probe | None:
        """The convergence record's probe of this cell's reconstructions (:func:`curve_probe`)."""
        return curve_probe(self.cell, self.round.private, self.info.normalization, self.device)


def prepare(cell: CellConfig, context: CellContext) -> PreparedCell:
    """Everything the cell's attack needs: the global model at its stage (trained or cached),
    the victim's round on it, the attacker's prior and view."""
    from evalgrid.fl.client import simulate_round
    from evalgrid.fl.stage import stage_request
    from evalgrid.fl.stage_cache import global_model

    device = resolve_device(context.device)
    dataset = load_dataset(cell.dataset, cell.resolution, context.data_root)
    request = stage_request(cell)
    model, stage = global_model(request, context.data_root, context.stages, device,
                                initial_accuracy=_measures_test_split(cell), train=context.train_stages)
    round_ = simulate_round(cell, model.to(device), dataset, device)
    prior, prior_key = adversary_prior(cell, context, device)
    view = round_.server_view(cell, dataset.info, prior)
    return PreparedCell(cell, device, dataset.info, request, stage, round_, view, prior_key)


def outcome(prepared: PreparedCell, context: CellContext, reconstructions: Sequence[Reconstruction],
            progress: AttackProgress, cells_packed: int = 1) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The row's fields and the artifacts of a cell whose trials gave ``reconstructions``:
    each trial scored against the private batch, the model's metrics, the attack's record."""
    cell, round_, view, device = prepared.cell, prepared.round, prepared.view, prepared.device
    normalization = prepared.info.normalization
    trials: list[Trial] = []
    for reconstruction in reconstructions:
        pixels = reconstructed_pixels(reconstruction, normalization, device)
        trials.append(Trial(reconstruction, pixels, score_trial(cell, round_.private, pixels, reconstruction,
                                                                cell.metrics)))
    selected = view.gradient_selection if view.gradient_selection is not None else range(len(view.update.gradients))
    fields: dict[str, Any] = {
        **trial_fields(cell, trials),
        **model_metric_fields(cell, context, prepared.request, prepared.stage.test_accuracy, round_, normalization,
                              device),
        "model_parameters": sum(p.numel() for p in view.model.parameters() if p.requires_grad),
        "gradient_parameters": sum(view.update.gradients[i].numel() for i in selected),
        "input_dimension": int(round_.private.images.numel()),
        "local_steps": round_.training.steps,
        "stage_round": prepared.stage.round,
        "prior_key": prepared.prior_key,
        "epsilon": round_.epsilon,
        "true_labels": round_.private.labels.cpu().tolist(),
        "resumed_at_iteration": progress.resumed_at,
        "trials_stacked": progress.stacked,
        "cells_packed": cells_packed,
        "speedups": ",".join(context.speedups),
    }
    artifacts = trial_artifacts(round_.private, trials, cell)
    if progress.curve:
        artifacts[CURVE_FILE] = curve_csv(progress.curve)
    return fields, artifacts


@dataclass(frozen=True, eq=False)  # holds tensors: compared by identity
class Trial:
    reconstruction: Reconstruction
    pixels: torch.Tensor  # the reconstruction in [0, 1], in the attack's order
    scores: Scores


def reconstructed_pixels(reconstruction: Reconstruction, normalization: Any, device: torch.device) -> torch.Tensor:
    """The reconstruction's images as pixels in [0, 1], in the attack's order."""
    return normalization.denormalize(reconstruction.images.detach().to(device)).clamp(0, 1)


def score_trial(cell: CellConfig, private: ClientData, pixels: torch.Tensor, reconstruction: Reconstruction,
                metrics: Sequence[str]) -> Scores:
    """``metrics`` of a reconstruction against the private batch, by the cell's matching rule."""
    return score(private, pixels, reconstruction.labels, cell.labels == "known", metrics,
                 cell.metric_options.matching)


def curve_probe(cell: CellConfig, private: ClientData, normalization: Any, device: torch.device) -> Probe | None:
    """What the convergence record measures at each point (evaluation/convergence.py): the cell's
    metrics whose entries are ``along_curve`` (PSNR), of the reconstruction against the private
    batch, scored as the cell's trials are (its matching rule, the batch mean); None when the
    cell measures none of them. The attack never sees this: the trial runner calls it with the
    attack's result."""
    from evalgrid.catalogue import METRICS

    measured = [name for name in cell.metrics if METRICS[name].along_curve]
    if not measured:
        return None

    def probe(reconstruction: Reconstruction) -> dict[str, float]:
        pixels = reconstructed_pixels(reconstruction, normalization, device)
        scores = score_trial(cell, private, pixels, reconstruction, measured)
        return {name: scores.values[name].mean for name in measured}

    return probe


def adversary_prior(cell: CellConfig, context: CellContext, device: torch.device) -> tuple[Any, str]:
    """The cell's prior network and its cache key ("" when loaded from the user's file), or
    (None, "") without one."""
    from evalgrid.priors.cache import prior_network
    from evalgrid.priors.request import prior_request

    request = prior_request(cell)
    if request is None:
        return None, ""
    network, record = prior_network(request, context.data_root, context.stages, device, train=context.train_stages)
    return network, record.key


def cell_checkpoint(cell: CellConfig, context: CellContext) -> CellCheckpoint:
    return CellCheckpoint(OutputDir(context.out_root).checkpoint(cell.cell_id), cell.cell_id, cell.canonical_json())


def _measures_test_split(cell: CellConfig) -> bool:
    from evalgrid.catalogue import METRICS

    return any(METRICS[name].needs_test_split for name in cell.metrics)


def trial_fields(cell: CellConfig, trials: list[Trial]) -> dict[str, Any]:
    """Metric means over trials, per-sample values as [trial][sample], leakage rates, the
    attack's iterations run and saved by early stopping (summed over trials), its share of the
    preset's budget, and the loss and labels of the trial with the lowest final loss."""
    from evalgrid.catalogue import ATTACKS, METRICS
    from evalgrid.evaluation.budget import budget_share

    fields: dict[str, Any] = {}
    per_sample: dict[str, np.ndarray] = {}
    for name in trials[0].scores.values:
        fields[name] = float(np.mean([t.scores.values[name].mean for t in trials]))
        if METRICS[name].per_sample:
            fields[f"{name}_per_sample"] = [[float(v) for v in t.scores.values[name].per_sample] for t in trials]
            per_sample[name] = np.array(fields[f"{name}_per_sample"])
    for name in cell.metrics:
        if METRICS[name].metric_kind == "leakage":
            fields[name] = float(METRICS[name].build(per_sample, cell.metric_options))
    best = min(trials, key=lambda t: t.reconstruction.final_loss)
    iterations = int(sum(t.reconstruction.iterations for t in trials))
    planned = ATTACKS[cell.attack.name].build(cell.attack.options).planned_iterations() * len(trials)
    fields.update(final_loss=float(best.reconstruction.final_loss),
                  loss_terms=json.dumps({name: list(values) for name, values in best.reconstruction.loss_terms.items()}),
                  attack_iterations=iterations, attack_iterations_saved=planned - iterations,
                  budget_share=budget_share(cell.attack.name, cell.attack.options),
                  recovered_labels=best.reconstruction.labels.detach().cpu().tolist())
    return fields


def model_metric_fields(cell: CellConfig, context: CellContext, request: Any, accuracy: float, round_: Any,
                        normalization: Any, device: torch.device) -> dict[str, Any]:
    """Metrics of the model rather than of a reconstruction (utility, smoothness): those the
    grid lists, and those recorded always (they cost nothing)."""
    from evalgrid.catalogue import METRICS
    from evalgrid.fl.stage_cache import global_model

    def defended_stage() -> Any:
        defended = dataclasses.replace(request, defense=cell.defense.steps)
        return global_model(defended, context.data_root, context.stages, device, train=context.train_stages)[1]

    inputs = ModelMetricInputs(cell, round_, normalization, accuracy, defended_stage)
    names = [name for name in METRICS if METRICS[name].metric_kind == "model"
             and (name in cell.metrics or METRICS[name].always_recorded)]
    return {name: float(METRICS[name].build(inputs)) for name in names}


def trial_artifacts(private: ClientData, trials: list[Trial], cell: CellConfig | None = None) -> dict[str, bytes]:
    """The best trial as a PNG above the originals, captioned with its per-image values of the
    first per-sample metric measured (PSNR among the built-ins; without one: the lowest loss)
    and titled with the ``cell`` and which row is which; every trial's matched reconstructions in an npz."""
    from evalgrid.catalogue import METRICS
    from evalgrid.evaluation.artifacts import picture_title, reconstruction_png

    shown = next((METRICS[name] for name in METRICS if METRICS[name].per_sample and name in trials[0].scores.values),
                 None)

    def quality(t: Trial) -> float:
        if shown is None:
            return -t.reconstruction.final_loss
        mean = t.scores.values[shown.name].mean
        return mean if shown.higher_is_better else -mean

    best = max(trials, key=quality)
    matched = [t.pixels[t.scores.matching.to(t.pixels.device)].cpu() for t in trials]
    captions = None
    if shown is not None:
        captions = [f"{v:.1f} {shown.unit}" if shown.unit else f"{shown.name} {v:.3g}"
                    for v in best.scores.values[shown.name].per_sample]
    images = private.images.cpu()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, originals=images.numpy(), reconstructions=torch.stack(matched).numpy(),
                        true_labels=private.labels.cpu().numpy(),
                        recovered_labels=torch.stack([t.reconstruction.labels.cpu() for t in trials]).numpy())
    chosen_by = f"best {shown.name.upper()}" if shown is not None else "lowest loss"
    title = picture_title(cell, trials.index(best), len(trials), chosen_by) if cell is not None else None
    return {"reconstruction.png": reconstruction_png(images, matched[trials.index(best)], captions, title),
            "reconstruction.npz": buffer.getvalue()}


def execute_cell(cell: CellConfig, context: CellContext) -> CellSummary:
    """Evaluate the cell and write its artifacts, log and result file (atomically, result last).

    Any exception (a NaN loss, out of memory, a bug) becomes a ``failed`` row; the run goes on.
    """
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.perf_counter()
    watch = start_progress(OutputDir(context.out_root), cell.cell_id, cell.trials)  # DIR/running/<id>.json
    try:
        row = outcome_row(cell, context, lambda: evaluate(cell, context, watch))
    finally:  # done, failed or stopped (Interrupted, Ctrl-C): the cell no longer runs
        watch.end()
    summary = finish(cell, context, row, started, time.perf_counter() - clock)
    cell_checkpoint(cell, context).discard()  # the result is written: the progress is spent
    return summary


def outcome_row(cell: CellConfig, context: CellContext,
                compute: Callable[[], tuple[dict[str, Any], dict[str, bytes]]]) -> dict[str, Any]:
    """The cell's row from ``compute()`` (its fields and artifacts; the artifacts are written
    now), or a ``failed`` row with the exception ``compute`` raised; a full disk raises OutputFull."""
    row = empty_row()
    try:
        fields, artifacts = compute()
        row.update(fields, status="done")
        for name, data in artifacts.items():
            atomic_write_bytes(OutputDir(context.out_root).artifacts(cell.cell_id) / name, data)
    except Exception as error:  # noqa: BLE001 - every failure is recorded, never swallowed
        if storage_full(error):  # recording it would fail too; every further cell would
            where = error.filename or context.out_root
            raise OutputFull(cell.cell_id, f"{error.strerror or error} ({where})") from None
        row.update(status="failed", error_type=type(error).__name__, error_message=str(error),
                   traceback=traceback.format_exc())
    return row


def record_failure(cell: CellConfig, context: CellContext, error_type: str, message: str,
                   wall_s: float = float("nan")) -> CellSummary:
    """Record a cell that failed outside its own process' control (e.g. its worker was killed)."""
    row = empty_row()
    row.update(status="failed", error_type=error_type, error_message=message)
    return finish(cell, context, row, dt.datetime.now(dt.timezone.utc), wall_s)


def finish(cell: CellConfig, context: CellContext, row: dict[str, Any], started: dt.datetime,
            wall_s: float) -> CellSummary:
    """Write the cell's log and result row (atomically, result last); a full disk raises OutputFull."""
    out = OutputDir(context.out_root)
    row.update(_identity(cell, context), wall_s=wall_s, started_at=started,
               finished_at=dt.datetime.now(dt.timezone.utc), device=device_label(context.device))
    try:
        atomic_write_text(out.log(cell.cell_id), _log_text(cell, row))
        write_result(out, row)
    except OSError as error:
        if storage_full(error):
            raise OutputFull(cell.cell_id, f"{error.strerror or error} ({error.filename or out.root})") from None
        raise
    error = f"{row['error_type']}: {row['error_message']}".splitlines()[0] if row["status"] == "failed" else ""
    return CellSummary(cell.cell_id, row["status"], wall_s, error, row["psnr"])


def _identity(cell: CellConfig, context: CellContext) -> dict[str, Any]:
    """The cell's identity and provenance: the launcher's (version, git state, command line) and
    this process' (host, libraries, GPU, plugins)."""
    from evalgrid.catalogue.plugins import plugin_packages
    from evalgrid.launch.provenance import process_provenance

    provenance = context.provenance
    return {"cell_id": cell.cell_id, "grid": context.grid_name, "config": cell.canonical_json(),
            **cell.factor_labels(), "host": platform.node(),  # where the cell ran (a node on Slurm)
            "evalgrid_version": provenance.evalgrid_version, "git_commit": provenance.git_commit,
            "git_dirty": provenance.git_dirty, "command": provenance.command,
            **process_provenance(str(resolve_device(context.device))),
            "plugins": "; ".join(str(package) for package in plugin_packages())}


def _log_text(cell: CellConfig, row: dict[str, Any]) -> str:
    lines = [f"cell {cell.cell_id}", f"config {cell.canonical_json()}", f"status {row['status']}",
             f"wall_s {row['wall_s']:.3f}"]
    if row.get("loss_terms"):  # each weighted loss term: first step -> returned images
        terms = json.loads(row["loss_terms"])
        lines.append("loss_terms " + ", ".join(f"{name} {first:.4g} -> {last:.4g}"
                                               for name, (first, last) in terms.items()))
    if row["status"] == "failed":
        lines.append(row["traceback"] or f"{row['error_type']}: {row['error_message']}")
    return "\n".join(lines) + "\n"

