"""``md.engine=ase``: the replicas one after another, each with an ASE integrator (deepeut.md.replica)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List

from deepeut.md.engines.base import Engine, Potential, h5md_parameters

log = logging.getLogger(__name__)


def finished_summary(rdir: Path, duration_ps: float, timestep_fs: float):
    """The replica's md.json when it covers ``duration_ps`` (a raised md.duration_ps continues the run)."""
    path = rdir / "md.json"
    if not path.exists():
        return None
    s = json.loads(path.read_text())
    return (
        s if s.get("duration_ps", 0.0) >= duration_ps - 0.5 * timestep_fs / 1000.0 or s.get("stopped_early") else None
    )


class AseEngine(Engine):
    name = "ase"

    def run(self, setups: List, md, potential: Potential, out: Path) -> List[Dict]:
        from deepeut.md.replica import run_replica
        from deepeut.md.safety import SimulationExploded

        calc = potential.ase_calculator()
        summaries: List[Dict] = []
        for r, setup in enumerate(setups):
            rdir = out / f"replica_{r}"
            done = finished_summary(rdir, md.duration_ps, md.timestep_fs)
            if done is not None:
                log.info("replica %d already finished (%s)", r, rdir / "md.json")
                summaries.append(done)
                continue
            setup.calculator = calc
            try:
                summaries.append(
                    run_replica(setup, md, rdir, params=h5md_parameters(md, self.name, setup.seed, potential.driver))
                )
            except SimulationExploded as exc:
                raise SimulationExploded(f"replica {r}, {exc} (frame saved in {rdir}; checkpoint kept)") from None
        return summaries
