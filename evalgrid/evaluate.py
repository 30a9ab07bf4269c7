"""One cell, end to end: the FedSGD client shares its gradient, the attacker reconstructs
from the :class:`ServerView` alone, and the reconstruction is scored against the private batch."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import io
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalgrid.cell import CellConfig
from evalgrid.provenance import Provenance
from evalgrid.store.atomic import atomic_write_bytes, atomic_write_text
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import PER_SAMPLE_METRICS, empty_row, write_result
from evalgrid.threat_model import ClientData, ServerView

# Independent random streams per purpose, so that changing one part leaves the others alone.
_MODEL_STREAM, _BATCH_STREAM, _ATTACK_STREAM = 0, 1, 2


@dataclass(frozen=True)
class CellContext:
    """What every cell of a run shares; picklable, sent to worker processes."""

    out_root: Path
    grid_name: str
    data_root: Path | None
    device: str  # "auto", "cpu" or "cuda"
    provenance: Provenance


@dataclass(frozen=True)
class CellSummary:
    """What a worker reports back to the launcher (the full row is on disk)."""

    cell_id: str
    status: str
    wall_s: float
    error: str = ""
    psnr: float = float("nan")


def stream_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@functools.lru_cache(maxsize=4)
def _dataset(name: str, options: Any, data_root: Path | None):
    from evalgrid.data import DATASETS

    return DATASETS[name].build(options, data_root)


def victim_indices(num_images: int, batch_size: int, seed: int) -> list[int]:
    if batch_size > num_images:
        raise ValueError(f"batch_size {batch_size} exceeds the {num_images} images of the dataset split")
    rng = np.random.default_rng(stream_seed(seed, _BATCH_STREAM))
    return sorted(rng.choice(num_images, size=batch_size, replace=False).tolist())


def evaluate(cell: CellConfig, context: CellContext) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run the cell; return the metric fields of its row and its artifacts (file name → bytes)."""
    from evalgrid.attacks import ATTACKS
    from evalgrid.fl.fedsgd import compute_update
    from evalgrid.images import reconstruction_png
    from evalgrid.metrics import score
    from evalgrid.models import MODELS

    device = resolve_device(context.device)
    dataset = _dataset(cell.dataset.name, cell.dataset.options, context.data_root)
    info = dataset.info
    images, labels = dataset.batch(victim_indices(len(dataset), cell.batch_size, cell.seed))
    client = ClientData(images.to(device), labels.to(device))

    torch.manual_seed(stream_seed(cell.seed, _MODEL_STREAM))
    model = MODELS[cell.model.name].build(cell.model.options, info).to(device)
    update = compute_update(model, client, info.normalization)
    view = ServerView(model=copy.deepcopy(model), update=update,
                      data_shape=(info.channels, info.resolution, info.resolution), num_classes=info.num_classes,
                      normalization=info.normalization,
                      known_labels=client.labels.clone() if cell.labels == "known" else None)
    del model  # the attacker works on its own copy only

    attack = ATTACKS[cell.attack.name].build(cell.attack.options)
    generator = torch.Generator().manual_seed(stream_seed(cell.seed, _ATTACK_STREAM))  # CPU: same start on any device
    reconstruction = attack.reconstruct(view, generator)

    pixels = info.normalization.denormalize(reconstruction.images.detach()).clamp(0, 1)
    scores = score(client, pixels, reconstruction.labels, cell.labels == "known", cell.metrics)
    matched = pixels[scores.permutation]
    fields: dict[str, Any] = {
        "final_loss": float(reconstruction.final_loss),
        "attack_iterations": int(reconstruction.iterations),
        "model_parameters": sum(p.numel() for p in view.model.parameters()),
        "input_dimension": int(images.numel()),
        "recovered_labels": reconstruction.labels.detach().cpu().tolist(),
        "true_labels": labels.tolist(),
    }
    for name, value in scores.values.items():
        fields[name] = float(value.mean)
        if name in PER_SAMPLE_METRICS:
            fields[f"{name}_per_sample"] = [float(v) for v in value.per_sample]
    captions = [f"{v:.1f} dB" for v in scores.values["psnr"].per_sample] if "psnr" in scores.values else None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, originals=images.numpy(), reconstructions=matched.cpu().numpy(),
                        true_labels=labels.numpy(), recovered_labels=reconstruction.labels.cpu().numpy())
    artifacts = {"reconstruction.png": reconstruction_png(images, matched.cpu(), captions),
                 "reconstruction.npz": buffer.getvalue()}
    return fields, artifacts


def execute_cell(cell: CellConfig, context: CellContext) -> CellSummary:
    """Evaluate the cell and write its artifacts, log and result file (atomically, result last).

    Any exception (a NaN loss, out of memory, a bug) becomes a ``failed`` row; the run goes on.
    """
    out = OutputDir(context.out_root)
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.perf_counter()
    row = empty_row()
    try:
        fields, artifacts = evaluate(cell, context)
        row.update(fields, status="done")
        for name, data in artifacts.items():
            atomic_write_bytes(out.artifacts(cell.cell_id) / name, data)
    except Exception as error:  # noqa: BLE001 - every failure is recorded, never swallowed
        row.update(status="failed", error_type=type(error).__name__, error_message=str(error),
                   traceback=traceback.format_exc())
    return _finish(cell, context, row, started, time.perf_counter() - clock)


def record_failure(cell: CellConfig, context: CellContext, error_type: str, message: str,
                   wall_s: float = float("nan")) -> CellSummary:
    """Record a cell that failed outside its own process' control (e.g. its worker was killed)."""
    row = empty_row()
    row.update(status="failed", error_type=error_type, error_message=message)
    return _finish(cell, context, row, dt.datetime.now(dt.timezone.utc), wall_s)


def _finish(cell: CellConfig, context: CellContext, row: dict[str, Any], started: dt.datetime,
            wall_s: float) -> CellSummary:
    out = OutputDir(context.out_root)
    row.update(_identity(cell, context), wall_s=wall_s, started_at=started,
               finished_at=dt.datetime.now(dt.timezone.utc), device=str(resolve_device(context.device)))
    atomic_write_text(out.log(cell.cell_id), _log_text(cell, row))
    write_result(out, row)
    error = f"{row['error_type']}: {row['error_message']}".splitlines()[0] if row["status"] == "failed" else ""
    return CellSummary(cell.cell_id, row["status"], wall_s, error, row["psnr"])


def _identity(cell: CellConfig, context: CellContext) -> dict[str, Any]:
    import torchvision

    provenance = context.provenance
    return {"cell_id": cell.cell_id, "grid": context.grid_name, "config": cell.canonical_json(),
            **cell.factor_labels(), "host": provenance.host or platform.node(),
            "evalgrid_version": provenance.evalgrid_version, "git_commit": provenance.git_commit,
            "git_dirty": provenance.git_dirty, "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__}


def _log_text(cell: CellConfig, row: dict[str, Any]) -> str:
    lines = [f"cell {cell.cell_id}", f"config {cell.canonical_json()}", f"status {row['status']}",
             f"wall_s {row['wall_s']:.3f}"]
    if row["status"] == "failed":
        lines.append(row["traceback"] or f"{row['error_type']}: {row['error_message']}")
    return "\n".join(lines) + "\n"

