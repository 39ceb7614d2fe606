"""MD engines behind one interface (see deepeut.md.engines.base): ase, torchsim, lammps."""

from deepeut.md.engines.base import (
    ENGINES,
    Engine,
    EngineCapabilities,
    Potential,
    engine_problems,
    get_engine,
    h5md_parameters,
    resolve_potential,
)

__all__ = [
    "ENGINES",
    "Engine",
    "EngineCapabilities",
    "Potential",
    "engine_problems",
    "get_engine",
    "h5md_parameters",
    "resolve_potential",
]
