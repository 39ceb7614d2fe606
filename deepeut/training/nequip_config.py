"""One ``nequip-train`` config per ensemble member, generated from ``conf/model``, ``conf/train`` and ``conf/logger``.

The generated YAML is what nequip 0.19 itself runs (``nequip-train -cp <member dir> -cn nequip``): its
``ASEDataModule``, ``NequIPLightningModule`` and ``allegro.model.AllegroModel``; deepeut does not re-implement
training. Units: energies eV, forces eV/Å, lengths Å. Dataset statistics (average neighbour count, per-type
force RMS as energy scale, per-atom mean energy as shift) come from nequip's ``training_data_stats`` resolver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from deepeut.config.schema import LoggerConfig, ModelConfig, TrainConfig
from deepeut.training.model import allegro_kwargs

#: nequip's validation metric that picks best.ckpt and drives early stopping (eV/atom + eV/Å)
MONITOR = "val0_epoch/weighted_sum"
#: data statistics nequip computes on each member's training split (resolver keys)
_STATS = {
    "avg_num_neighbors": "num_neighbors_mean",
    "per_type_energy_scales": "per_type_forces_rms",
    "per_type_energy_shifts": "per_atom_energy_mean",
}


def lightning_accelerator(device: str, devices: int) -> Dict[str, Any]:
    """Lightning ``accelerator``/``devices`` for deepeut's ``device`` (cpu | cuda | cuda:N | mps)."""
    if device == "cpu":
        return {"accelerator": "cpu", "devices": devices}
    if device.startswith("cuda:"):
        return {"accelerator": "gpu", "devices": [int(device.split(":", 1)[1])]}
    return {"accelerator": "gpu" if device == "cuda" else device, "devices": devices}


def _stats_ref(name: str) -> str:
    return "${training_data_stats:" + name + "}"


def model_section(model: ModelConfig, type_names: Sequence[str], seed: int) -> Dict[str, Any]:
    """``training_module.model``: AllegroModel keywords with nequip's dataset-statistics references."""
    kw = allegro_kwargs(model, type_names, seed=seed, **{k: _stats_ref(v) for k, v in _STATS.items()})
    return {"_target_": "allegro.model.AllegroModel", **kw}


def data_section(
    train_file: Path, test_file: Path, type_names: Sequence[str], r_max: float, seed: int, train: TrainConfig
) -> Dict[str, Any]:
    """nequip ``ASEDataModule``: the member's own random train/validation split of the training pool."""
    loader = {"_target_": "torch.utils.data.DataLoader", "num_workers": train.num_workers}
    return {
        "_target_": "nequip.data.datamodule.ASEDataModule",
        "seed": seed,
        "split_dataset": {"file_path": str(train_file), "train": 1.0 - train.val_fraction, "val": train.val_fraction},
        "test_file_path": str(test_file),
        "transforms": [
            {
                "_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                "model_type_names": list(type_names),
                "chemical_species_to_atom_type_map": {t: t for t in type_names},
            },
            {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": r_max},
        ],
        "train_dataloader": {**loader, "batch_size": train.batch_size, "shuffle": True},
        "val_dataloader": {**loader, "batch_size": train.val_batch_size},
        "test_dataloader": {**loader, "batch_size": train.val_batch_size},
        "stats_manager": {
            "_target_": "nequip.data.CommonDataStatisticsManager",
            "dataloader_kwargs": {"batch_size": train.val_batch_size},
            "type_names": list(type_names),
        },
    }


def logger_section(logger: LoggerConfig, member_dir: Path, run_name: str, group: str, tracked: Dict[str, Any]) -> Any:
    """Lightning loggers for per-epoch metrics: always CSV in ``<member>/metrics/`` (the ensemble manifest's test
    metrics are read from it, whatever the tracking), plus W&B (offline by default) with ``logger=wandb``."""
    loggers: List[Dict[str, Any]] = [
        {
            "_target_": "lightning.pytorch.loggers.CSVLogger",
            "save_dir": str(member_dir),
            "name": "metrics",
            "version": "",
        }
    ]
    if logger.name == "wandb" and logger.mode != "disabled":
        loggers.append(
            {
                "_target_": "lightning.pytorch.loggers.WandbLogger",
                "project": logger.project,
                "entity": logger.entity,
                "name": run_name,
                "group": group,
                "tags": list(logger.tags),
                "save_dir": str(member_dir),
                "offline": logger.mode == "offline",
                "config": tracked,
                "_convert_": "all",
            }
        )
    return loggers


def lr_schedule_section(train: TrainConfig) -> Dict[str, Any]:
    """``train.lr_final``: a cosine from ``train.lr`` to it over ``train.max_epochs`` (CosineAnnealingLR);
    ``train.lr_plateau_factor``: the learning rate × this factor after ``train.lr_plateau_patience`` epochs
    without a better validation metric (ReduceLROnPlateau); neither: none (a constant rate)."""
    if train.lr_final is not None:
        return {
            "lr_scheduler": {
                "scheduler": {
                    "_target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
                    "T_max": train.max_epochs,
                    "eta_min": train.lr_final,
                },
                "interval": "epoch",
                "frequency": 1,
            }
        }
    if train.lr_plateau_factor is None:
        return {}
    return {
        "lr_scheduler": {
            "scheduler": {
                "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
                "factor": train.lr_plateau_factor,
                "patience": train.lr_plateau_patience,
            },
            "monitor": MONITOR,
            "interval": "epoch",
            "frequency": 1,
        }
    }


def callbacks_section(member_dir: Path, train: TrainConfig) -> List[Dict[str, Any]]:
    """best.ckpt (lowest validation metric) and last.ckpt (every epoch, for resuming); optional early stop."""
    callbacks: List[Dict[str, Any]] = [
        {
            "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
            "dirpath": str(member_dir),
            "filename": "best",
            "save_last": True,
            "monitor": MONITOR,
            "mode": "min",
        },
    ]
    if train.early_stopping_patience:
        callbacks.append(
            {
                "_target_": "lightning.pytorch.callbacks.EarlyStopping",
                "monitor": MONITOR,
                "patience": train.early_stopping_patience,
                "mode": "min",
            }
        )
    return callbacks


def loss_section(train: TrainConfig, type_names: Sequence[str]) -> Dict[str, Any]:
    """Eq. 5: w_E × MSE(per-atom energy) + w_F × MSE(forces); with ``train.force_weight_by_element`` the force MSE
    is the weighted mean of the per-element MSEs (nequip's ``per_type_forces_coeffs``; unlisted elements weigh 1)."""
    loss: Dict[str, Any] = {
        "_target_": "nequip.train.EnergyForceLoss",
        "per_atom_energy": True,
        "coeffs": {"total_energy": train.energy_weight, "forces": train.force_weight},
    }
    if train.force_weight_by_element:
        from deepeut.errors import InputError

        unknown = sorted(set(train.force_weight_by_element) - set(type_names))
        if unknown:
            raise InputError(
                f"train.force_weight_by_element names {', '.join(unknown)}, not an element of this system "
                f"({' '.join(type_names)})"
            )
        loss["per_type_forces_coeffs"] = {e: float(train.force_weight_by_element.get(e, 1.0)) for e in type_names}
    return loss


def warm_start_model(member_dir: Path) -> Dict:
    """nequip model section that starts from a trained member: its ``best.ckpt`` (ModelFromCheckpoint), or the
    packaged ``model.nequip.zip`` of a packed ensemble (ModelFromPackage; committed ensembles carry only these)."""
    ckpt, package = member_dir / "best.ckpt", member_dir / "model.nequip.zip"
    if ckpt.exists():
        return {"_target_": "nequip.model.ModelFromCheckpoint", "checkpoint_path": str(ckpt.resolve())}
    if package.exists():
        return {"_target_": "nequip.model.ModelFromPackage", "package_path": str(package.resolve())}
    from deepeut.training.members import TrainingError

    raise TrainingError(f"warm start: {member_dir} has neither best.ckpt nor model.nequip.zip")


def training_module_target(train: TrainConfig) -> Dict[str, Any]:
    """nequip's plain LightningModule, or its EMA variant with ``train.ema_decay``."""
    if train.ema_decay is None:
        return {"_target_": "nequip.train.NequIPLightningModule"}
    return {"_target_": "nequip.train.EMALightningModule", "ema_decay": train.ema_decay}


def member_config(
    *,
    model: ModelConfig,
    train: TrainConfig,
    logger: LoggerConfig,
    member: int,
    train_file: Path,
    test_file: Path,
    member_dir: Path,
    type_names: Sequence[str],
    device: str,
    n_train_frames: int,
    group: str,
    tracked: Dict[str, Any],
    init_from: Optional[Path] = None,
) -> Dict[str, Any]:
    """The complete nequip-train config of ensemble member ``member`` (seed ``train.seed + member``); with
    ``init_from`` (an ensemble folder) the model starts from that ensemble's member weights (nequip's
    ModelFromCheckpoint, or ModelFromPackage for a packed ensemble)."""
    seed = train.seed + member
    metric = {
        "_target_": "nequip.train.EnergyForceMetrics",
        "coeffs": {
            "per_atom_energy_rmse": 1.0,
            "forces_rmse": 1.0,
            "per_atom_energy_mae": None,
            "forces_mae": None,
            "total_energy_rmse": None,
        },
    }
    steps_per_epoch = max(1, int(n_train_frames * (1 - train.val_fraction)) // train.batch_size)
    return {
        "run": ["train", "test"],
        "data": data_section(train_file, test_file, type_names, model.r_max, seed, train),
        "trainer": {
            "_target_": "lightning.Trainer",
            **lightning_accelerator(device, train.devices),
            "num_nodes": train.num_nodes,
            "strategy": train.strategy,
            "max_epochs": train.max_epochs,
            "log_every_n_steps": min(50, steps_per_epoch),
            "logger": logger_section(logger, member_dir, f"{group}-member{member}", group, tracked),
            "callbacks": callbacks_section(member_dir, train),
        },
        "training_module": {
            **training_module_target(train),
            "loss": loss_section(train, type_names),
            "val_metrics": metric,
            "test_metrics": metric,
            "optimizer": {"_target_": "torch.optim.Adam", "lr": train.lr},
            "model": model_section(model, type_names, seed)
            if init_from is None
            else warm_start_model(Path(init_from) / f"member_{member}"),
            **lr_schedule_section(train),
        },
        "global_options": {"allow_tf32": False},
    }
