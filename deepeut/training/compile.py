"""Compile the members of a trained ensemble for LAMMPS (``pair_allegro``), TorchSim (``batch``) or ASE.

One command, run where the target toolchain exists (a GPU node for LAMMPS/Kokkos)::

    python -m deepeut.training.compile outputs/.../train --target pair_allegro --device cuda

It calls ``nequip-compile --mode aotinductor`` on each member's best.ckpt (with Allegro's contraction as batched
matrix products, deepeut.training.contract) and writes
``member_<k>/compiled_<target>.nequip.pt2``. On CPU this works but was slower than the eager model on the
2-core test machine, so the default MD path (md.engine=ase) keeps using the eager packaged model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import List

from deepeut.training.potential import manifest_path

TARGETS = ("pair_allegro", "batch", "ase", "pair_nequip")


def compiled_path(member_dir: Path, target: str) -> Path:
    return member_dir / f"compiled_{target}.nequip.pt2"


def compile_commands(ensemble: str | Path, target: str, device: str) -> List[List[str]]:
    """The ``nequip-compile`` command line of every finished member."""
    import json

    if target not in TARGETS:
        raise ValueError(f"target '{target}' is not one of {', '.join(TARGETS)}")
    mpath = manifest_path(ensemble)
    cmds = []
    for m in json.loads(mpath.read_text())["members"]:
        d = mpath.parent / m["dir"]
        cmds.append(
            [
                sys.executable,
                "-m",
                "deepeut.training.nequip_entry",
                "nequip.scripts.compile",
                str(d / m["checkpoint"]),
                str(compiled_path(d, target)),
                "--mode",
                "aotinductor",
                "--device",
                device,
                "--target",
                target,
            ]
        )
    return cmds


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ensemble", help="a stage=train output folder (with ensemble.json)")
    p.add_argument("--target", default="pair_allegro", choices=TARGETS)
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    for cmd in compile_commands(args.ensemble, args.target, args.device):
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
