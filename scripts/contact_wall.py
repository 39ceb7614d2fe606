#!/usr/bin/env python
"""How close the reference method lets Li⁺ approach an oxygen at the MD temperature, and whether a committee
reproduces that wall: the measurement behind ``validate.min_contact_A``.

Takes the frame of an MD trajectory with the shortest intermolecular Li–O contact, relaxes it with GFN2-xTB (FIRE,
all atoms), then moves the Li of the shortest pair rigidly along the Li–O vector and prints, at each distance, the
xTB and committee energies relative to the relaxed structure (eV and kT) and the force on Li along the pair.

    .venv/bin/python scripts/contact_wall.py --trajectory outputs/ura_val/driver_committee/replica_0/trajectory.h5 \\
        --ensemble outputs/campaign/ura/al/iter_2/train [--temperature 353] [--relax-steps 150]

Measured (2026-11-30, 2 cores shared, ~25 min): see README "Potentials campaign".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KB_EV_K = 8.617333262e-5


def li_o_pairs(atoms):
    """(Li indices, O indices, Li×O minimum-image distance matrix in Å) of ``atoms``."""
    sym = np.array(atoms.get_chemical_symbols())
    li, o = np.nonzero(sym == "Li")[0], np.nonzero(sym == "O")[0]
    return li, o, atoms.get_all_distances(mic=True)[np.ix_(li, o)]


def closest_frame(path: Path):
    """The frame of the H5MD trajectory at ``path`` with the shortest Li–O distance, and that distance (Å)."""
    from deepeut.trajectory.h5md import H5MDTrajectory

    with H5MDTrajectory(path) as tr:
        best = min(range(tr.n_frames), key=lambda k: li_o_pairs(tr.atoms(k))[2].min())
        atoms = tr.atoms(best)
    return atoms, float(li_o_pairs(atoms)[2].min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectory", required=True, type=Path)
    ap.add_argument("--ensemble", required=True)
    ap.add_argument("--temperature", type=float, default=353.0, help="K, for the energies in kT")
    ap.add_argument("--relax-steps", type=int, default=150)
    ap.add_argument("--distances", default="1.70,1.65,1.60,1.55,1.50,1.45", help="Li–O distances of the scan (Å)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from ase.optimize import FIRE
    from tblite.ase import TBLite

    from deepeut.training.potential import Ensemble

    atoms, start = closest_frame(args.trajectory)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    FIRE(atoms, logfile=None).run(fmax=0.1, steps=args.relax_steps)
    li, o, d = li_o_pairs(atoms)
    a, b = np.unravel_index(np.argmin(d), d.shape)
    i, j, r0 = int(li[a]), int(o[b]), float(d[a, b])
    unit = atoms.get_distance(i, j, mic=True, vector=True) / r0
    ens = Ensemble.load(args.ensemble)
    kt = KB_EV_K * args.temperature
    print(f"closest Li–O in the trajectory {start:.2f} Å; after the xTB relaxation Li {i}–O {j} at {r0:.3f} Å")
    head = [("r (Å)", 6), ("xTB dE (eV)", 12), ("(kT)", 6), ("committee dE", 13), ("(kT)", 6), ("F_Li xTB", 9)]
    print(" ".join(f"{h:>{w}}" for h, w in [*head, ("committee", 10)]))
    ref = None
    for r in [r0, *map(float, args.distances.split(","))]:
        moved = atoms.copy()
        moved.positions[i] += (r0 - r) * unit
        moved.calc = TBLite(method="GFN2-xTB", verbosity=0)
        e_x, f_x = moved.get_potential_energy(), float(moved.get_forces()[i] @ unit)
        pred = ens.predict([moved])
        e_c, f_c = float(pred.mean_energies[0]), float(pred.mean_forces[0][i] @ unit)
        ref = ref or (e_x, e_c)
        dx, dc = e_x - ref[0], e_c - ref[1]
        print(f"{r:6.3f} {dx:+12.3f} {dx / kt:6.1f} {dc:+13.3f} {dc / kt:6.1f} {f_x:+9.2f} {f_c:+10.2f}", flush=True)
    print("F_Li: force on Li along Li→O (eV/Å; negative pushes Li away from O)")


if __name__ == "__main__":
    main()
