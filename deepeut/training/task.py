"""``stage=train``: an ensemble of ``train.ensemble_size`` Allegro potentials on a dataset store (or the demo data)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Optional

from deepeut.config.schema import Config
from deepeut.data.source import training_data
from deepeut.stage_io import Dataset, EnsembleRef, TrainOutput
from deepeut.systems.species import system_elements
from deepeut.training.members import MANIFEST, TrainingError, objective, train_member, write_manifest

log = logging.getLogger(__name__)


def _check_same_dataset(out: Path, digest: str) -> None:
    """A restarted run must train on the data its finished members saw."""
    path = out / MANIFEST
    if path.exists():
        old = json.loads(path.read_text())["dataset"]["manifest_hash"]
        if old != digest:
            raise TrainingError(
                f"{out} holds members trained on dataset {old}, but the data is now {digest}; "
                "train into a new output_dir"
            )


def members_table(members) -> str:
    """Test metrics of the members (nequip's test run) as a text table (meV/atom, eV/Å)."""
    head = f"{'member':>6}{'seed':>6}{'E/atom MAE meV':>16}{'F RMSE eV/Å':>13}{'F MAE eV/Å':>12}{'wall s':>8}"
    lines = [head, "-" * len(head)]
    for m in members:
        t = m["test_metrics"]
        lines.append(
            f"{m['member']:>6}{m['seed']:>6}{1000 * t.get('per_atom_energy_mae', float('nan')):>16.2f}"
            f"{t.get('forces_rmse', float('nan')):>13.3f}{t.get('forces_mae', float('nan')):>12.3f}"
            f"{m['train_wall_s']:>8.0f}"
        )
    return "\n".join(lines)


def train(cfg: Config, out: Path) -> Dict:
    """``stage=train`` from the command line: the data from ``data.store`` (none: the shipped demo dataset) and
    the warm start from ``train.init_from``, then :func:`run_train`."""
    data = Dataset(Path(cfg.data.store) if cfg.data.store else None)
    init = EnsembleRef(Path(cfg.train.init_from)) if cfg.train.init_from else None
    return run_train(cfg, data, out, init).to_json()


def run_train(cfg: Config, dataset: Dataset, out: Path, init_from: Optional[EnsembleRef] = None) -> TrainOutput:
    """Train (or resume) the members ``train.members`` (default all) on ``dataset``, from scratch or warm-started
    from ``init_from``'s members, and write ``ensemble.json``."""
    data = training_data(str(dataset.store) if dataset.store else None, cfg.system.name, out / "data")
    _check_same_dataset(out, data.manifest_hash)
    type_names = system_elements(cfg.system.species)
    group = f"{cfg.system.name}-{cfg.model.name}-{data.manifest_hash[:8]}"
    tracked = {"deepeut": asdict(cfg), "dataset_manifest_hash": data.manifest_hash, "dataset_origin": data.origin}
    members = cfg.train.members if cfg.train.members is not None else list(range(cfg.train.ensemble_size))
    log.info(
        "training members %s of %d on %s (%d train+val, %d test structures, manifest %s)",
        members,
        cfg.train.ensemble_size,
        data.origin,
        data.n_train,
        data.n_test,
        data.manifest_hash,
    )
    init = init_from.path if init_from is not None else None
    for k in members:
        train_member(k, cfg, data, out, type_names, group, tracked, init)
    manifest = write_manifest(out, cfg, data, type_names, init)
    table = members_table(manifest["members"])
    print(table)
    if not manifest["complete"]:
        log.info(
            "%d of %d members finished; the others train in their own runs (train.members)",
            len(manifest["members"]),
            cfg.train.ensemble_size,
        )
    summary = {"objective": objective(manifest["members"]), "complete": manifest["complete"]}
    return TrainOutput(EnsembleRef(out), summary)
