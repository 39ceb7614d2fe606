"""What each MD engine supports (deepeut.md.engines implements them), checked when the md config is validated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet


@dataclass(frozen=True)
class EngineCapabilities:
    thermostats: FrozenSet[str]
    committee_mean: bool  # md.ensemble_member=null: forces are the mean of the ensemble's members
    truncate: bool  # md.on_unstable=truncate: keep the frames before a failed safety check
    devices: FrozenSet[str]  # device prefixes
    chunked: bool = False  # md.eval_chunks > 1: the model evaluates each structure in slabs with halos
    compiled: bool = False  # md.compiled: members compiled ahead of time (nequip-compile, ASE target, one structure)


ENGINES = {
    "ase": EngineCapabilities(
        frozenset({"nose_hoover_chain", "langevin"}),
        True,
        True,
        frozenset({"cpu", "cuda"}),
        chunked=True,
        compiled=True,
    ),
    "torchsim": EngineCapabilities(frozenset({"nose_hoover_chain"}), True, True, frozenset({"cpu", "cuda"})),
    "lammps": EngineCapabilities(frozenset({"nose_hoover_chain"}), False, False, frozenset({"cpu", "cuda"})),
}


def engine_problems(
    engine: str, thermostat: str, ensemble_member, on_unstable: str, eval_chunks: int = 1, compiled: bool = False
) -> list:
    """(key, message) pairs for every setting ``engine`` cannot honour; empty when all is supported."""
    cap = ENGINES[engine]
    out = []
    if thermostat not in cap.thermostats:
        out.append(
            (
                "md.thermostat",
                f"md.engine={engine} has no '{thermostat}' thermostat (it has "
                f"{', '.join(sorted(cap.thermostats))}); choose one of those or md.engine=ase",
            )
        )
    if ensemble_member is None and not cap.committee_mean:
        out.append(
            (
                "md.ensemble_member",
                f"md.engine={engine} cannot drive MD with the committee mean "
                "(md.ensemble_member=null): set md.ensemble_member=0 (one member) or use "
                "md.engine=ase or torchsim",
            )
        )
    if on_unstable == "truncate" and not cap.truncate:
        out.append(
            (
                "md.on_unstable",
                f"md.engine={engine} cannot truncate an unstable run (md.on_unstable="
                "truncate): set md.on_unstable=stop or use md.engine=ase or torchsim",
            )
        )
    if eval_chunks > 1 and not cap.chunked:
        out.append(
            (
                "md.eval_chunks",
                f"md.engine={engine} evaluates the whole box in one pass: set md.eval_chunks=1 or use md.engine=ase",
            )
        )
    if compiled and not cap.compiled:
        out.append(
            (
                "md.compiled",
                f"md.engine={engine} runs the members' eager models: set md.compiled=false or use md.engine=ase",
            )
        )
    return out
