"""Config group al: the active-learning loop (the paper's Methods B)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from omegaconf import MISSING

from deepeut.config.base import INPUT, _at_least, _choice, _require
from deepeut.config.choices import ConformalLevel, ConformalQuantile, Retrain


@dataclass
class ALConfig:
    """Active learning (conf/al/*.yaml): the paper's loop of Methods B. Thresholds in kcal/mol/Å (paper)."""

    name: str = MISSING
    alpha: float = MISSING  # conformal miscoverage: ũ covers the error with probability ≥ 1 − α
    #: conformal scores per atom, or per structure (max over atoms); see active_learning/conformal
    level: ConformalLevel = MISSING
    #: conformal quantile: exact (split-conformal order statistic, default) | paper (the paper's AmpTorch formula
    #: with N = calibration structures); see deepeut/active_learning/conformal.py
    quantile: ConformalQuantile = ConformalQuantile.exact
    threshold_kcal_mol_A: float = MISSING  # select frames with max ũ above this
    #: when set, the threshold is this factor × the iteration ensemble's mean member test force RMSE (the paper's
    #: 3 kcal/mol/Å is ~3× its own RMSE); threshold_kcal_mol_A is then unused
    threshold_rmse_factor: Optional[float] = None
    #: when set, the threshold is this quantile (1.0: the largest) of max ũ over the store's held-out test frames:
    #: a frame is selected when the calibrated committee is less sure of it than of (nearly) every labeled frame it
    #: was tested on; threshold_kcal_mol_A and threshold_rmse_factor are then unused
    threshold_test_quantile: Optional[float] = None
    #: when set (element pair "A-B" → Å), a frame with an intermolecular contact shorter than its pair's limit is
    #: a candidate too, whatever its ũ (the committee can agree on a wrong contact); al=campaign: the validation's
    #: failure limits (validate.min_contact_A)
    select_contacts_below_A: Dict[str, float] = field(default_factory=dict)
    stop_below: int = MISSING  # stop when fewer frames than this are selected after screening
    #: when set, stop when the frames selected after screening are fewer than this fraction of the explored
    #: frames (calibration frames excluded); stop_below is then unused
    stop_below_fraction: Optional[float] = None
    max_iterations: int = MISSING
    explore_runs: int = MISSING  # MD runs per iteration from different initial boxes
    explore_ps: float = MISSING  # per run (paper: 50-100 ps)
    explore_temperature_K: float = MISSING
    explore_save_every_fs: float = MISSING  # the paper: every 100 steps of 0.5 fs
    #: stop an exploration run at the first saved frame with a broken or fused molecule (its frames so far are
    #: kept): the frames after a break are all rejected by the screening, so running on wastes the run's time
    explore_stop_on_broken: bool = False
    n_calibration: int = MISSING  # exploration frames labeled for the conformal calibration
    retrain: Retrain = MISSING  # scratch | warm (members start from the previous iteration's weights)
    max_selected: Optional[int] = MISSING  # cap on frames labeled per iteration
    min_gap_frames: int = MISSING  # diversity: chosen frames of one run are at least this many frames apart
    #: smallest allowed distance between atoms of different molecules, per element pair "H-O" (Å)
    min_distance_A: Dict[str, float] = MISSING
    seed: int = MISSING
    #: a trained ensemble (stage=train folder) that iteration 0 uses instead of training its own (stage=pipeline
    #: passes its train stage here); it must have been trained on the loop's initial data
    initial_ensemble: Optional[str] = field(default=None, metadata=INPUT)

    def __post_init__(self) -> None:
        _require(0 < self.alpha < 1, "al.alpha", "must be in (0, 1)")
        _choice(self.level, ConformalLevel, "al.level")
        _choice(self.quantile, ConformalQuantile, "al.quantile")
        _choice(self.retrain, Retrain, "al.retrain")
        _require(self.explore_runs >= 1 and self.explore_ps > 0, "al.explore_runs", "needs >= 1 run of > 0 ps")
        _require(self.n_calibration >= 1, "al.n_calibration", "must be >= 1")
        _require(self.max_iterations >= 1, "al.max_iterations", "must be >= 1")
        _require(
            self.threshold_rmse_factor is None or self.threshold_rmse_factor > 0,
            "al.threshold_rmse_factor",
            "must be > 0 (or null for the absolute threshold_kcal_mol_A)",
        )
        _require(
            self.threshold_test_quantile is None or 0 < self.threshold_test_quantile <= 1,
            "al.threshold_test_quantile",
            "must be in (0, 1] (or null)",
        )
        _require(
            self.threshold_test_quantile is None or self.threshold_rmse_factor is None,
            "al.threshold_test_quantile",
            "set either it or al.threshold_rmse_factor, not both",
        )
        _require(
            self.stop_below_fraction is None or 0 < self.stop_below_fraction < 1,
            "al.stop_below_fraction",
            "must be in (0, 1) (or null for the count stop_below)",
        )
        _require(self.threshold_kcal_mol_A >= 0, "al.threshold_kcal_mol_A", "must be >= 0 kcal/mol/Å (0: every frame)")
        _at_least(self, "al", 0, "stop_below", "min_gap_frames", "seed")
        _require(
            self.explore_temperature_K > 0 and self.explore_save_every_fs > 0,
            "al.explore_temperature_K",
            "exploration needs a temperature > 0 K and al.explore_save_every_fs > 0 fs",
        )
        _at_least(self, "al", 1, "max_selected")
        for name, pairs in (
            ("min_distance_A", self.min_distance_A),
            ("select_contacts_below_A", self.select_contacts_below_A),
        ):
            for k, d in pairs.items():
                _require(len(k.split("-")) == 2, f"al.{name}", f"key '{k}' is not an element pair like H-O")
                _require(d > 0, f"al.{name}.{k}", "must be > 0 Å")
