"""``stage=build``: write ``box.extxyz`` and ``topology.json`` into the run directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict

from deepeut.config.schema import Config
from deepeut.stage_io import BoxOutput, Structures
from deepeut.systems.box import build_box
from deepeut.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)


def write_extxyz(path: Path, atoms) -> Path:
    """Write periodic ``atoms`` as extxyz atomically (positions Å)."""
    from ase.io import write

    with atomic_path(path) as tmp:
        write(tmp, atoms, format="extxyz")
    return path


def build(cfg: Config, out: Path) -> Dict:
    """``stage=build`` (no inputs): :func:`run_build`."""
    return run_build(cfg, out).to_json()


def run_build(cfg: Config, out: Path) -> BoxOutput:
    """Build, check and write the liquid box of ``cfg.system`` at ``cfg.scale`` (``box.extxyz`` with
    ``topology.json`` beside it, ``build.json``)."""
    t0 = time.perf_counter()
    box = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build)
    atoms = box.atoms
    atoms.info.update(
        {
            "system": cfg.system.name,
            "scale": cfg.scale.name,
            "length_unit": "Angstrom",
            "density_g_cm3": cfg.system.density_g_cm3,
        }
    )
    write_extxyz(out / "box.extxyz", atoms)
    box.topology.write(out / "topology.json")
    summary = {
        "system": cfg.system.name,
        "scale": cfg.scale.name,
        "n_atoms": len(atoms),
        "box_edge_A": round(float(atoms.cell.lengths()[0]), 4),
        "composition": box.topology.counts(),
        "density_g_cm3": cfg.system.density_g_cm3,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json_atomic(out / "build.json", summary)
    log.info(
        "built %s/%s: %d atoms, %.2f Å cube, %s in %.1f s -> %s",
        cfg.system.name,
        cfg.scale.name,
        len(atoms),
        summary["box_edge_A"],
        summary["composition"],
        summary["seconds"],
        out / "box.extxyz",
    )
    return BoxOutput(Structures.of([out / "box.extxyz"]), summary)
