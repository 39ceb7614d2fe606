"""The MD engine interface: what each engine supports, the potential it is handed, and what it must return.

What an engine supports is declared in deepeut.config.engines and checked when the config is validated (the
first second of a run): an engine that cannot honour a setting refuses it in one line naming the key, instead of
silently running something else (member 0 for the committee, a thermostat it does not have, equilibration in
the tables).

The MD stage (deepeut.md.task) owns everything around the engine: it resolves the potential once
(:class:`Potential`: ensemble folder + member or committee), builds the start structures (one
:class:`~deepeut.md.replica.ReplicaSetup` per replica), hands both to :meth:`Engine.run`, and writes ``md.json``.
An engine writes ``replica_<r>/trajectory.h5`` with :func:`h5md_parameters` and returns one summary per replica
(deepeut.md.replica.summarise); it never reads the ensemble config.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional
from deepeut.config.engines import ENGINES, EngineCapabilities, engine_problems  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Potential:
    """The trained potential of an MD run, resolved once: the ensemble folder (ensemble.json + member files), the
    member that drives the run (None: the committee mean of all members) and the torch device."""

    path: Path
    member: Optional[int]
    device: str = "cpu"
    skin_A: float = 0.0  # Verlet skin of the MD neighbour list (0: rebuilt every step)
    committee_eval: str = "loop"  # the committee's members: one call each (loop) or one vmapped call (vmap)
    chunks: int = 1  # > 1: each structure evaluated in this many slabs with halos (engine ase)
    compiled: bool = False  # members compiled ahead of time (engine ase; deepeut.training.compile)

    @property
    def driver(self) -> str:
        return "committee mean" if self.member is None else f"member {self.member}"

    @property
    def model_files(self) -> List[Path]:
        from deepeut.training.potential import member_model_files

        return member_model_files(self.path)

    def ase_calculator(self):
        """ASE calculator: the member's forces, or the committee mean with its per-atom uncertainty."""
        from deepeut.training.potential import Ensemble

        members = None if self.member is None else [self.member]
        ensemble = Ensemble.load(
            self.path,
            device=self.device,
            members=members,
            skin_A=self.skin_A,
            committee_eval=self.committee_eval,
            chunks=self.chunks,
            compiled=self.compiled,
        )
        return ensemble.calculator(member=0 if members else None)


def resolve_potential(cfg, ensemble: str, member: Optional[int], out: Path) -> Potential:
    """The ensemble of ``ensemble`` (a folder, ``embedded`` or empty for the newest in outputs/, see
    deepeut.training.potential.resolve_ensemble) with the member checked against its size, on ``cfg.device``,
    with the neighbour-list skin and committee evaluation of ``cfg.md``."""
    from deepeut.training.potential import check_member, member_model_files, resolve_ensemble

    path = Path(resolve_ensemble(ensemble, out, cfg.system))
    check_member(member, len(member_model_files(path)))
    md = cfg.md
    return Potential(path, member, cfg.device, md.neighbor_skin_A, md.committee_eval, md.eval_chunks, md.compiled)


def h5md_parameters(md, engine: str, seed: int, driver: str) -> Dict:
    """The run parameters every engine stores in its H5MD file (the analysis skips ``equilibration_ps``)."""
    return {
        "engine": engine,
        "timestep_fs": md.timestep_fs,
        "temperature_K": md.temperature_K,
        "thermostat": md.thermostat,
        "thermostat_tau_ps": md.thermostat_tau_ps,
        "chain_length": md.chain_length,
        "seed": seed,
        "equilibration_ps": md.equilibration_ps,
        "driver": driver,
    }


class Engine:
    """One MD engine. :meth:`run` advances every replica of ``setups`` for ``md.duration_ps`` (continuing from
    checkpoints in ``out``) and returns one summary per replica, in order."""

    name = "engine"

    def run(self, setups: List, md, potential: Potential, out: Path) -> List[Dict]:
        raise NotImplementedError


_IMPLEMENTATIONS = {
    "ase": "deepeut.md.engines.ase:AseEngine",
    "torchsim": "deepeut.md.engines.torchsim:TorchSimEngine",
    "lammps": "deepeut.md.engines.lammps:LammpsEngine",
}


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (imported on demand: torch-sim and LAMMPS stay unloaded unless asked for)."""
    module, cls = _IMPLEMENTATIONS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
