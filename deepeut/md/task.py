"""``stage=md``: NVT replicas with the trained potential (``md.engine``: ase, torchsim or lammps).

Writes ``replica_<r>/`` (see deepeut.md.replica for its files) and ``md.json`` with every replica's summary, the
engine, and the potential that drove them (``ensemble``, ``driver``: committee mean or member k). A finished run
whose ``md.duration_ps`` is raised continues from its checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from deepeut.config.schema import Config, ConfigError
from deepeut.md.replica import ReplicaSetup
from deepeut.stage_io import MDOutput, Structures, Trajectories
from deepeut.utils.io import json_safe, write_json_atomic

log = logging.getLogger(__name__)


def read_start(path: str | Path) -> Tuple[object, bool, Optional[np.ndarray], Optional[np.ndarray]]:
    """Start structure from extxyz (last frame) or H5MD (last committed frame): atoms, has velocities,
    molecule ids and labels when the file carries them."""
    from ase.io import read

    from deepeut.config.schema import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"md.start: {path} does not exist")
    if path.suffix in (".h5", ".h5md"):
        from deepeut.trajectory.readers import open_trajectory

        with open_trajectory(path) as tr:
            has_vel = tr.parameters.get("constraints", "none") == "none"
            return tr.atoms(tr.n_frames - 1), has_vel, tr.molecule, tr.labels
    try:
        atoms = read(path, index=-1)
    except Exception as exc:
        raise ConfigError(
            f"md.start: {path} cannot be read ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:150]})"
        ) from None
    if abs(atoms.cell.volume) < 1e-6 or not atoms.pbc.all():
        raise ConfigError(f'md.start: {path} has no periodic cell (write it with its box: Lattice=... pbc="T T T")')
    if not np.all(np.isfinite(atoms.positions)):
        raise ConfigError(f"md.start: {path} has non-finite positions")
    # velocities of a run with constrained X–H bonds lack the bond vibrations: such a start is re-thermalised
    has_vel = bool(np.any(atoms.get_momenta())) and atoms.info.get("constraints", "none") == "none"
    molecule = np.asarray(atoms.arrays["molecule"]) if "molecule" in atoms.arrays else None
    return atoms, has_vel, molecule, None


def model_r_max(cfg: Config, out: Path, ensemble: Optional[Path] = None) -> float:
    """Cutoff (Å) of the ensemble the stage runs with (its manifest), else ``model.r_max``."""
    from deepeut.training.potential import EnsembleError, manifest_path, resolve_ensemble

    try:
        path = manifest_path(ensemble or resolve_ensemble(cfg.committee, out, cfg.system))
        return float(json.loads(path.read_text())["r_max_A"])
    except (ConfigError, EnsembleError, KeyError, OSError, ValueError):
        return cfg.model.r_max


def starts_from_config(cfg: Config) -> Structures:
    """The command line's start structures: ``md.starts``, else ``md.start`` (every replica starts there)."""
    return Structures.of(cfg.md.starts or ([cfg.md.start] if cfg.md.start else []))


def start_structure(
    cfg: Config, replica: int, rdir: Path, ensemble: Optional[Path] = None, starts: Structures = Structures()
) -> ReplicaSetup:
    """``starts`` for this replica (cycled), with its velocities when the file has unconstrained ones and is this
    replica's own (a cycled file gets new velocities); no starts: a new box per replica packed with seed
    ``build.seed + replica``. Molecule ids and labels come from the topology.
    The box must be wider than the model cutoff (:func:`deepeut.systems.box.check_cutoff_fits`)."""
    from deepeut.systems.box import build_box
    from deepeut.systems.task import write_extxyz
    from deepeut.systems.topology import Topology

    from deepeut.systems import MoleculeRecognizer

    from deepeut.systems.box import check_cutoff_fits

    rec = MoleculeRecognizer.for_system(cfg.system)
    start = starts.for_replica(replica)
    if start is not None:
        atoms, has_vel, molecule, labels = read_start(start)
        check_cutoff_fits(atoms.cell.array, model_r_max(cfg, rdir.parent, ensemble), f"md.start {start}")
        topo_path = Path(cfg.md.topology) if cfg.md.topology else Path(start).with_name("topology.json")
        if (molecule is None or labels is None) and topo_path.exists():
            topo = Topology.read(topo_path)
            topo.check_against(len(atoms), str(start))
            molecule, labels = topo.molecule, topo.label
        result = rec.recognise(atoms.positions, atoms.numbers, atoms.cell.array)
        if molecule is None:
            molecule, labels = result.fragment, result.labels
        counts = result.counts()
        use_vel = has_vel and replica < len(starts.paths)
    else:
        box = build_box(
            cfg.system, cfg.scale.n_ion_pairs, dataclasses.replace(cfg.build, seed=cfg.build.seed + replica)
        )
        check_cutoff_fits(
            box.atoms.cell.array,
            model_r_max(cfg, rdir.parent, ensemble),
            f"system={cfg.system.name} scale={cfg.scale.name} ({len(box.atoms)} atoms)",
        )
        atoms, molecule, labels, counts, use_vel = (
            box.atoms,
            box.topology.molecule,
            box.topology.label,
            box.topology.counts(),
            False,
        )
        rdir.mkdir(parents=True, exist_ok=True)
        if not (rdir / "box.extxyz").exists():
            write_extxyz(rdir / "box.extxyz", atoms)
            box.topology.write(rdir / "topology.json")
    return ReplicaSetup(
        atoms=atoms,
        calculator=None,
        seed=cfg.md.seed + replica,
        molecule=molecule,
        labels=labels,
        recognizer=rec,
        expected_counts=counts,
        use_start_velocities=use_vel,
    )


def md_calculator(cfg: Config, out: Path):
    """ASE calculator of the trained ensemble: one member (``md.ensemble_member``) or the mean."""
    from deepeut.md.engines import resolve_potential

    return resolve_potential(cfg, cfg.committee, cfg.md.ensemble_member, out).ase_calculator()


def md(cfg: Config, out: Path) -> Dict:
    """``stage=md`` from the command line: the potential (``ensemble`` + ``md.ensemble_member``) and the starts
    (``md.starts`` / ``md.start``) from the config, then :func:`run_md`."""
    from deepeut.md.engines import resolve_potential

    potential = resolve_potential(cfg, cfg.committee, cfg.md.ensemble_member, out)
    return run_md(cfg, potential, out, starts_from_config(cfg)).to_json()


def relax_packed_box(atoms, potential, steps: int, fmax_eV_A: float) -> None:
    """Relax a freshly packed box in place with ``potential`` (ASE FIRE, at most ``steps`` steps, to a largest force
    of ``fmax_eV_A``): deterministic, so a resumed run relaxes its box to the same structure."""
    from ase.optimize import FIRE

    atoms.calc = potential.ase_calculator()
    before = float(np.abs(atoms.get_forces()).max())
    FIRE(atoms, logfile=None).run(fmax=fmax_eV_A, steps=steps)
    log.info(
        "packed box relaxed with the potential: largest force %.2f -> %.2f eV/Å",
        before,
        float(np.abs(atoms.get_forces()).max()),
    )
    atoms.calc = None


def claim_output_for(out: Path, potential) -> None:
    """Record in ``out/potential.json`` which potential runs the MD there (ensemble digest and driver), or raise
    :class:`ConfigError` when an earlier run there used another one: resuming would splice two potentials'
    trajectories (and a finished replica would be reported as this potential's)."""
    from deepeut.training.potential import ensemble_digest

    path = out / "potential.json"
    mine = {"ensemble_digest": ensemble_digest(potential.path), "driver": potential.driver}
    if path.exists():
        theirs = json.loads(path.read_text())
        if {k: theirs.get(k) for k in mine} != mine:
            raise ConfigError(
                f"output_dir: {out} holds MD of another potential ({theirs.get('driver')} of {theirs.get('ensemble')}, "
                f"digest {theirs.get('ensemble_digest')}; this run: {mine['driver']} of {potential.path}, digest "
                f"{mine['ensemble_digest']}); pass a new output_dir"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {**mine, "ensemble": str(potential.path)})


def run_md(cfg: Config, potential, out: Path, starts: Structures = Structures()) -> MDOutput:
    """The one MD stage of deepeut (stage=md, AL exploration, validation and the pipeline all come here):
    ``md.replicas`` replicas from ``starts`` (none: fresh packed boxes), ``md.engine`` runs them with ``potential``
    (deepeut.md.engines.Potential), ``md.json`` collects their summaries (with the potential that drove them)."""
    from deepeut.md.engines import get_engine

    engine = get_engine(cfg.md.engine)
    claim_output_for(out, potential)
    setups = [start_structure(cfg, r, out / f"replica_{r}", potential.path, starts) for r in range(cfg.md.replicas)]
    if not starts.paths and cfg.md.relax_packed_steps > 0:
        for setup in setups:
            relax_packed_box(setup.atoms, potential, cfg.md.relax_packed_steps, cfg.md.relax_fmax_eV_A)
    summaries = engine.run(setups, cfg.md, potential, out)
    for r, s in enumerate(summaries):
        if "temperature_mean_K" in s:
            log.info(
                "replica %d: <T> = %.1f ± %.1f K (target %.0f K), drift %.4f kcal/mol/atom/ns, %.3g ns/day",
                r,
                s["temperature_mean_K"],
                s["temperature_sem_K"],
                cfg.md.temperature_K,
                s["energy_drift_kcal_mol_atom_ns"],
                s["ns_per_day"],
            )
    report = {
        "system": cfg.system.name,
        "engine": cfg.md.engine,
        "driver": potential.driver,
        "ensemble": str(potential.path),
        "md": dataclasses.asdict(cfg.md),
        "starts": [str(p) for p in starts.paths],
        "replicas": summaries,
    }
    write_json_atomic(out / "md.json", json_safe(report))
    from deepeut.utils.tracking import log_results

    log_results(cfg, out, "md", {f"replica_{i}": s for i, s in enumerate(summaries)})
    stopped = [
        f"replica {k} at {s['stopped_early']['time_ps']:.3f} ps"
        for k, s in enumerate(summaries)
        if s.get("stopped_early") and s["stopped_early"].get("failed", True)
    ]
    trajectories = Trajectories.of([out / f"replica_{r}" / "trajectory.h5" for r in range(len(summaries))])
    return MDOutput(trajectories, out / "md.json", stopped)
