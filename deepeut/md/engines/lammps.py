"""``md.engine=lammps``: one LAMMPS job per replica with ``pair_style allegro`` (one member: LAMMPS cannot drive MD
with the committee mean, and the config check refuses ``md.ensemble_member=null``).

Writes ``replica_<r>/system.data``, ``in.lammps`` and ``run.slurm`` (deepeut.md.lammps); when
``md.lammps_command`` is on PATH the job runs here and its dump becomes ``trajectory.h5`` with the stage's H5MD
parameters (equilibration included), else the inputs are left for ``sbatch run.slurm``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

from deepeut.md.engines.base import Engine, Potential, h5md_parameters

log = logging.getLogger(__name__)


def compiled_model(potential: Potential) -> Path:
    """The pair_allegro build of the driving member (python -m deepeut.training.compile makes it)."""
    from deepeut.training.compile import compiled_path
    from deepeut.training.potential import manifest_path

    mpath = manifest_path(potential.path)
    member = json.loads(mpath.read_text())["members"][potential.member or 0]
    return compiled_path(mpath.parent / member["dir"], "pair_allegro")


class LammpsEngine(Engine):
    name = "lammps"

    def run(self, setups: List, md, potential: Potential, out: Path) -> List[Dict]:
        from deepeut.md.lammps import DUMP, dump_to_h5md, input_script, pair_allegro_lines, slurm_script, write_data
        from deepeut.md.replica import summarise
        from deepeut.training.potential import manifest_path
        from deepeut.utils.io import write_text_atomic

        type_names = json.loads(manifest_path(potential.path).read_text())["type_names"]
        model = compiled_model(potential)
        lmp = shutil.which(md.lammps_command)
        summaries: List[Dict] = []
        for r, setup in enumerate(setups):
            rdir = out / f"replica_{r}"
            write_data(rdir / "system.data", setup.atoms, setup.molecule, type_names)
            script = input_script(
                md,
                type_names,
                pair_allegro_lines(str(model.resolve()), type_names),
                setup.seed,
                new_velocities=not setup.use_start_velocities,
            )
            write_text_atomic(rdir / "in.lammps", script)
            write_text_atomic(rdir / "run.slurm", slurm_script(md))
            if lmp is None:
                summaries.append({"inputs": str(rdir), "ran": False, "model": str(model)})
                continue
            if not model.exists():
                raise FileNotFoundError(
                    f"{model}: compile the model first: python -m deepeut.training.compile "
                    f"{potential.path} --target pair_allegro --device {potential.device}"
                )
            subprocess.run([lmp, "-in", "in.lammps"], cwd=rdir, check=True)
            dump_to_h5md(
                rdir / DUMP,
                rdir / "trajectory.h5",
                md.timestep_fs,
                setup.atoms.get_masses(),
                setup.atoms.numbers,
                setup.molecule,
                setup.labels,
                h5md_parameters(md, self.name, setup.seed, potential.driver),
            )
            summaries.append({**summarise(rdir / "trajectory.h5", md, 0.0, 0), "ran": True})
        if lmp is None:
            log.info(
                "no '%s' on PATH: LAMMPS inputs written to %s; run them with sbatch run.slurm (after compiling "
                "the model: python -m deepeut.training.compile <ensemble> --target pair_allegro)",
                md.lammps_command,
                out,
            )
        return summaries
