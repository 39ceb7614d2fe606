"""Config groups model and train: the Allegro architecture and the training recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

from deepeut.config.base import _at_least, _choice, EXECUTION, INPUT, _require
from deepeut.config.choices import ModelDtype, Nonlinearity


@dataclass
class ModelConfig:
    """Allegro hyperparameters (conf/model/*.yaml), mapped onto ``allegro.model.AllegroModel`` (allegro 0.8).

    ``*_nonlinearity: null`` means a linear MLP. Widths of MLP hidden layers are one number per MLP in
    allegro 0.8 (the paper's widening two-body MLP cannot be expressed exactly; see model/allegro_paper.yaml).
    """

    name: str = MISSING
    r_max: float = MISSING  # Å, radial cutoff
    l_max: int = MISSING  # maximal rotation order of the spherical harmonics
    parity: bool = MISSING  # even and odd parity features
    num_layers: int = MISSING  # Allegro interaction layers
    num_scalar_features: int = MISSING  # latent scalar width
    num_tensor_features: int = MISSING  # equivariant feature multiplicity
    num_bessels: int = MISSING
    bessel_trainable: bool = MISSING
    polynomial_cutoff_p: int = MISSING
    radial_chemical_embed_dim: Optional[int] = None  # default: num_scalar_features
    scalar_embed_mlp_hidden_layers_depth: int = MISSING  # two-body MLP
    scalar_embed_mlp_hidden_layers_width: int = MISSING
    scalar_embed_mlp_nonlinearity: Optional[Nonlinearity] = MISSING
    allegro_mlp_hidden_layers_depth: int = MISSING  # latent MLP
    allegro_mlp_hidden_layers_width: int = MISSING
    allegro_mlp_nonlinearity: Optional[Nonlinearity] = MISSING
    readout_mlp_hidden_layers_depth: int = MISSING  # pair-energy MLP
    readout_mlp_hidden_layers_width: int = MISSING
    readout_mlp_nonlinearity: Optional[Nonlinearity] = MISSING
    tp_path_channel_coupling: bool = True
    model_dtype: ModelDtype = MISSING
    #: add nequip's ZBL screened nuclear repulsion (a pair prior for close contacts the data never shows; the
    #: element of each type is its type name)
    zbl: bool = False

    def __post_init__(self) -> None:
        _require(self.r_max > 0, "model.r_max", "must be > 0 Å")
        _require(self.l_max >= 0, "model.l_max", "must be >= 0")
        _require(self.num_layers >= 1, "model.num_layers", "must be >= 1")
        _at_least(self, "model", 1, "num_scalar_features", "num_tensor_features", "num_bessels", "polynomial_cutoff_p")
        _at_least(self, "model", 1, "radial_chemical_embed_dim", "scalar_embed_mlp_hidden_layers_width")
        _at_least(self, "model", 1, "allegro_mlp_hidden_layers_width", "readout_mlp_hidden_layers_width")
        _at_least(self, "model", 0, "scalar_embed_mlp_hidden_layers_depth", "allegro_mlp_hidden_layers_depth")
        _at_least(self, "model", 0, "readout_mlp_hidden_layers_depth")
        _choice(self.model_dtype, ModelDtype, "model.model_dtype")
        for key in ("scalar_embed_mlp_nonlinearity", "allegro_mlp_nonlinearity", "readout_mlp_nonlinearity"):
            if getattr(self, key) is not None:
                _choice(getattr(self, key), Nonlinearity, f"model.{key}")


@dataclass
class TrainConfig:
    """Training of the Allegro ensemble through ``nequip-train`` (conf/train/*.yaml).

    Loss (Eq. 5): ``energy_weight`` × per-atom energy MSE (eV²/atom²) + ``force_weight`` × force MSE (eV²/Å²).
    Members differ in the weight-initialisation seed and in the train/validation split (seed ``seed + k``).
    """

    name: str = MISSING
    ensemble_size: int = MISSING
    #: which members this run trains (null: all). A multirun ``train.members=[0],[1],[2]`` trains them side by side
    members: Optional[List[int]] = field(default=None, metadata=EXECUTION)
    seed: int = MISSING  # member k uses seed + k for its weights and its train/validation split
    val_fraction: float = MISSING  # of the training pool, per member
    lr: float = MISSING  # Adam
    #: when set, multiply the learning rate by this after lr_plateau_patience epochs without a better validation
    #: metric (ReduceLROnPlateau); null: constant (the paper)
    lr_plateau_factor: Optional[float] = None
    lr_plateau_patience: int = 3
    #: when set, the learning rate follows a cosine from ``lr`` down to this value over ``max_epochs``
    #: (CosineAnnealingLR; replaces the plateau rule): the finishing anneal of a warm-started member
    lr_final: Optional[float] = None
    #: when set, validation, test and the packaged model use an exponential moving average of the weights with
    #: this decay per optimizer step (nequip's EMALightningModule); null: the raw weights (the paper)
    ema_decay: Optional[float] = None
    batch_size: int = MISSING  # structures per step (paper: 1)
    val_batch_size: int = MISSING
    max_epochs: int = MISSING  # paper: at most 200
    early_stopping_patience: Optional[int] = MISSING  # epochs without validation improvement; null: off
    energy_weight: float = MISSING  # per-atom energy MSE weight (Eq. 5)
    force_weight: float = MISSING  # force MSE weight (Eq. 5)
    #: when set, the force MSE of Eq. 5 is the mean of per-element force MSEs weighted by these numbers (elements
    #: not listed: 1), instead of the mean over atoms, so a rare element (4 Li among 88 atoms) counts as much as H;
    #: empty: the mean over atoms (the paper)
    force_weight_by_element: Dict[str, float] = field(default_factory=dict)
    #: Lightning Trainer: devices per member (GPUs when device=cuda), nodes and strategy (ddp for several GPUs)
    devices: int = field(default=1, metadata=EXECUTION)
    num_nodes: int = field(default=1, metadata=EXECUTION)
    strategy: str = field(default="auto", metadata=EXECUTION)
    num_workers: int = field(default=0, metadata=EXECUTION)  # DataLoader worker processes
    package: bool = True  # nequip-package each finished member (model.nequip.zip)
    #: warm start: a trained ensemble folder whose member k's best.ckpt initialises member k (null: from scratch)
    init_from: Optional[str] = field(default=None, metadata=INPUT)

    def __post_init__(self) -> None:
        _require(self.ensemble_size >= 1, "train.ensemble_size", "must be >= 1")
        _require(self.lr > 0, "train.lr", "must be > 0")
        _require(
            self.lr_plateau_factor is None or 0 < self.lr_plateau_factor < 1,
            "train.lr_plateau_factor",
            "must be in (0, 1) (or null for a constant learning rate)",
        )
        _require(self.lr_final is None or 0 < self.lr_final <= self.lr, "train.lr_final", "must be in (0, train.lr]")
        _require(
            self.lr_final is None or self.lr_plateau_factor is None,
            "train.lr_final",
            "a cosine anneal and train.lr_plateau_factor exclude each other: set one of them to null",
        )
        _require(self.ema_decay is None or 0 < self.ema_decay < 1, "train.ema_decay", "must be in (0, 1)")
        _require(self.lr_plateau_patience >= 0, "train.lr_plateau_patience", "must be >= 0 epochs")
        _require(0 < self.val_fraction < 1, "train.val_fraction", "must be in (0, 1)")
        _require(self.batch_size >= 1 and self.val_batch_size >= 1, "train.batch_size", "must be >= 1")
        _require(self.max_epochs >= 1, "train.max_epochs", "must be >= 1")
        _at_least(self, "train", 0, "seed", "num_workers")
        _at_least(self, "train", 1, "early_stopping_patience", "devices", "num_nodes")
        _require(
            self.energy_weight >= 0 and self.force_weight >= 0 and self.energy_weight + self.force_weight > 0,
            "train.energy_weight",
            "loss weights must be >= 0 and not both 0",
        )
        for element, weight in self.force_weight_by_element.items():
            _require(weight > 0, f"train.force_weight_by_element.{element}", "must be > 0")
        for k in self.members or []:
            _require(
                0 <= k < self.ensemble_size,
                "train.members",
                f"member {k} is outside 0..{self.ensemble_size - 1} (train.ensemble_size={self.ensemble_size})",
            )
