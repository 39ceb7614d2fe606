"""Schema of the ``validate`` config group (conf/validate/*.yaml): can an ensemble run MD, and how well?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from omegaconf import MISSING


@dataclass
class ValidateConfig:
    """``stage=validate``: NVT runs from classical liquids with each driver, fresh reference labels of their
    frames, failure times, force errors per element, conformal coverage, Li–O structure. Times in ps, Å, K."""

    name: str = MISSING
    #: who drives the MD: "committee" (the mean of all members) and/or member indices as strings ("0")
    drivers: List[str] = field(default_factory=lambda: ["committee", "0"])
    duration_ps: float = 2.0
    replicas: int = 1
    #: frames drawn evenly from the runs (after the first 10 %) and labeled fresh with ``labeler``
    n_label_frames: int = 8
    alpha: float = 0.1  # conformal miscoverage of ũ, calibrated on half of the labeled frames, tested on the rest
    #: closest allowed intermolecular distances (Å): a shorter contact is a failure. Li–O 1.5 Å is where GFN2-xTB's
    #: energy has risen 10 kT (353 K) above its relaxed minimum (scripts/contact_wall.py on a URA liquid frame: minimum
    #: 1.77 Å; +0.017 eV at 1.70 Å, +0.105 at 1.60, +0.31 at 1.50), so the reference itself visits 1.7 Å thermally
    min_contact_A: Dict[str, float] = field(default_factory=lambda: {"Li-O": 1.5, "H-O": 1.4})
    contact_every_frames: int = 5  # contact and molecule checks of the stored run on every n-th saved frame
    #: a run fails when its temperature averaged over this window (ps) leaves the target by more than
    #: temperature_sigmas × T √(2/N_f) (the canonical fluctuation of the instantaneous temperature)
    temperature_window_ps: float = 1.0
    temperature_sigmas: float = 2.0
    #: of a failed run, the committee's force uncertainty u (Eq. 6) on this many saved frames before the failure
    #: (0: not computed): whether the committee saw the failure coming
    warning_frames: int = 10

    def __post_init__(self) -> None:
        from deepeut.config.base import _require

        _require(
            len(self.drivers) >= 1 and all(d == "committee" or d.isdigit() for d in self.drivers),
            "validate.drivers",
            "a list of 'committee' and member indices like '0'",
        )
        _require(self.duration_ps > 0 and self.replicas >= 1, "validate.duration_ps", "needs > 0 ps and >= 1 replica")
        for pair, limit in self.min_contact_A.items():
            _require(limit > 0, f"validate.min_contact_A.{pair}", f"must be > 0 Å, got {limit}")
        _require(
            self.temperature_window_ps > 0 and self.temperature_sigmas > 0,
            "validate.temperature_window_ps",
            "window (ps) and temperature_sigmas must be > 0",
        )
        _require(self.n_label_frames >= 2, "validate.n_label_frames", "must be >= 2 (half calibrate, half test)")
        _require(0 < self.alpha < 1, "validate.alpha", "must be in (0, 1)")
        _require(self.contact_every_frames >= 1, "validate.contact_every_frames", "must be >= 1")
        _require(self.warning_frames >= 0, "validate.warning_frames", "must be >= 0")
