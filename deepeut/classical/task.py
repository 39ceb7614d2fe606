"""``stage=classical``: equilibrated liquids with GAFF2 (AM1-BCC) and Li/Merz 12-6 Li+ in OpenMM.

Output folder::

    classical.json               per replica: NPT density (mean ± sem, g/cm³) beside the system's, final
                                 density, ⟨T⟩ ± sem (K), ⟨E_pot⟩ (kJ/mol), ns/day, short contacts, molecule check;
                                 the force field (parameter files, AmberTools version, cutoff, charge scale)
    replica_<r>/box.extxyz       the equilibrated liquid (Å; velocities; ``molecule`` ids per atom)
    replica_<r>/topology.json    molecule ids, species and labels (deepeut.systems.topology)
    replica_<r>/trajectory.h5    the NVT part (H5MD, fixed box; the analysis stage reads it)
    replica_<r>/samples/*.extxyz frames for reference labels (with ``classical.samples_per_temperature``)
    replica_<r>/box.prmtop       the Amber topology OpenMM ran (tleap)
    replica_<r>/replica.json     written last: the replica is finished

Replica r packs its own box (packmol seed ``build.seed + 7919 r``): Li⁺ shells live ~1 ns, so only independent
boxes give independent starts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from deepeut.classical.parameters import ClassicalError, SpeciesParameters, ambertools_version, system_parameters
from deepeut.classical.protocol import (
    CHECKPOINT,
    Engine,
    Progress,
    check_finite,
    load_checkpoint,
    phases,
    rescale_to_density,
    run_steps,
    save_checkpoint,
)
from deepeut.config.classical import Constraints
from deepeut.stage_io import ClassicalOutput, Structures
from deepeut.config.schema import Config
from deepeut.utils.io import write_json_atomic
from deepeut.utils.geometry import closest_contacts, contact_violations
from deepeut.utils.units import KJ_PER_MOL_IN_EV, density_g_cm3, kj_per_mol_to_ev
from deepeut.utils.statistics import mean_and_sem

log = logging.getLogger(__name__)

REPLICA_SEED_STRIDE = 7919
#: the NPT density bound (classical.max_density_deviation) applies to the mean over this many ps
DENSITY_WINDOW_PS = 5.0
#: the settle phase lasts at least this many Langevin relaxation times (1/friction)
SETTLE_FRICTION_TIMES = 3.0


def steps(ps: float, timestep_fs: float) -> int:
    return int(round(ps * 1000.0 / timestep_fs))


class ReplicaRunner:
    """Runs the phases of one replica (see deepeut.classical.protocol) into ``rdir``."""

    def __init__(self, cfg: Config, box, params: List[SpeciesParameters], rdir: Path):
        from deepeut.classical.system import openmm_system, platform_for, write_prmtop

        self.cfg, self.c, self.box, self.rdir = cfg, cfg.classical, box, rdir
        atoms, topo = box.atoms, box.topology
        prmtop = write_prmtop(params, topo, atoms.cell.array, self.c, rdir)
        ionic = [s.name for s in cfg.system.species if s.role in ("cation", "anion")]
        self.make_system = lambda constraints: openmm_system(
            prmtop, atoms.numbers, atoms.cell.array, topo, ionic, self.c, constraints
        )[0]
        platform, props = platform_for(cfg.device)
        self.engine = Engine(self.make_system, self.c, platform, props, len(atoms), topo.mass)
        self.masses = np.asarray(topo.mass, float)

    def run(self) -> Dict:
        ckpt = load_checkpoint(self.rdir / CHECKPOINT)
        if ckpt is None:
            pos, vel, box = self.box.atoms.positions / 10.0, None, self.box.atoms.cell.array / 10.0
            progress = Progress()
        else:
            pos, vel, box, progress = ckpt
            log.info("%s: resuming in phase %s at step %d", self.rdir.name, progress.phase, progress.steps_done)
        order = phases(self.c)
        for phase in order[order.index(progress.phase) :]:
            if progress.phase != phase:
                progress.phase, progress.steps_done = phase, 0
            pos, vel, box = getattr(self, "phase_" + phase.split("_")[0])(phase, progress, pos, vel, box)
        return self.summary(progress)

    # ------------------------------------------------------------------ phases
    def _start(
        self, phase, progress, pos, vel, box, constraints=None, timestep=None, temperature=None, barostat=False
    ) -> None:
        c = self.c
        self.engine.switch(
            constraints or c.constraints,
            timestep or c.timestep_fs,
            temperature or c.temperature_K,
            barostat,
            pos,
            vel,
            box,
        )
        self._checkpoint = lambda: save_checkpoint(self.rdir / CHECKPOINT, self.engine.context, progress)

    def _md(self, phase: str, progress: Progress, ps: float, timestep: float, every: int, on_interval) -> tuple:
        c = self.c
        n = steps(ps, timestep)
        run_steps(
            self.engine,
            n,
            progress,
            every,
            max(every, steps(c.checkpoint_every_ps, timestep)),
            on_interval,
            self._checkpoint,
            f"classical {self.rdir.name} {phase}",
            timestep,
        )
        if n == 0:
            self._checkpoint()
        return self.engine.state()

    def phase_minimise(self, phase, progress, pos, vel, box) -> tuple:
        import openmm
        from openmm import unit

        self._start(phase, progress, pos, None, box)
        e0 = self.engine.observables()["potential_kJ_mol"]
        openmm.LocalEnergyMinimizer.minimize(
            self.engine.context, 10.0 * unit.kilojoule_per_mole / unit.nanometer, self.c.minimise_iterations
        )
        obs = self.engine.observables()
        check_finite(obs, phase, 0.0)
        progress.wall_s["minimise"] = 0.0
        log.info("%s: minimised %.0f → %.0f kJ/mol", self.rdir.name, e0, obs["potential_kJ_mol"])
        self._checkpoint()
        p, _, b = self.engine.state()
        return p, None, b

    def phase_heat(self, phase, progress, pos, vel, box, restart: bool = True, ps: Optional[float] = None) -> tuple:
        if restart:
            self._start(phase, progress, pos, vel, box)
        every = steps(self.c.save_every_ps, self.c.timestep_fs)
        return self._md(
            phase,
            progress,
            self.c.heat_ps if ps is None else ps,
            self.c.timestep_fs,
            every,
            lambda s: check_finite(self.engine.observables(), phase, s * self.c.timestep_fs / 1000),
        )

    def phase_npt(self, phase, progress, pos, vel, box) -> tuple:
        c = self.c
        self._start(phase, progress, pos, vel, box, barostat=True)
        target = self.cfg.system.density_g_cm3

        def on_interval(step: int) -> None:
            obs = self.engine.observables()
            t_ps = step * c.timestep_fs / 1000
            check_finite(obs, phase, t_ps)
            progress.npt_density.append(obs["density_g_cm3"])
            window = max(1, int(round(DENSITY_WINDOW_PS / c.save_every_ps)))
            recent = float(np.mean(progress.npt_density[-window:]))  # small boxes fluctuate by several %
            dev = recent / target - 1
            if abs(dev) > c.max_density_deviation:
                raise ClassicalError(
                    f"npt: the density drifted to {recent:.3f} g/cm³ (mean of the {DENSITY_WINDOW_PS:g} "
                    f"ps before {t_ps:.1f} ps), "
                    f"{100 * dev:+.0f} % off the system's {target} g/cm³ (bound: "
                    f"classical.max_density_deviation = {c.max_density_deviation:g}); check the "
                    "parameters or raise the bound"
                )

        return self._md(phase, progress, c.npt_ps, c.timestep_fs, steps(c.save_every_ps, c.timestep_fs), on_interval)

    def phase_settle(self, phase, progress, pos, vel, box) -> tuple:
        """Rescale the NPT box to the system's density, relax the contacts, re-thermalise (``heat_ps``, unsaved)."""
        import openmm
        from openmm import unit

        if progress.steps_done == 0:
            pos, box = rescale_to_density(
                np.asarray(pos),
                np.asarray(box),
                self.box.topology.molecule,
                self.masses,
                self.cfg.system.density_g_cm3,
                self.masses.sum(),
            )
            self._start(phase, progress, pos, None, box)
            openmm.LocalEnergyMinimizer.minimize(
                self.engine.context, 10.0 * unit.kilojoule_per_mole / unit.nanometer, 200
            )
            self.engine.context.setVelocitiesToTemperature(self.c.temperature_K * unit.kelvin)
        else:
            self._start(phase, progress, pos, vel, box)
        # a minimised structure takes half the kinetic energy back into the potential: re-thermalise for at least
        # 3 thermostat times (Langevin: 1/friction) so that the saved NVT starts at the target temperature
        return self.phase_heat(
            phase,
            progress,
            *self.engine.state(),
            restart=False,
            ps=max(self.c.heat_ps, SETTLE_FRICTION_TIMES / self.c.friction_per_ps),
        )

    def phase_nvt(self, phase, progress, pos, vel, box) -> tuple:
        from deepeut.trajectory.h5md import H5MDWriter

        c = self.c
        atoms, topo = self.box.atoms, self.box.topology
        self._start(phase, progress, pos, vel, box)
        cell_A = np.asarray(box) * 10.0
        params = {
            "engine": "openmm",
            "force_field": f"{c.ff_atom_types}/{c.ff_charge_method}",
            "timestep_fs": c.timestep_fs,
            "temperature_K": c.temperature_K,
            "thermostat": "langevin",
            "friction_per_ps": c.friction_per_ps,
            "constraints": c.constraints.value,
            "equilibration_ps": 0.0,
        }
        writer = H5MDWriter(
            self.rdir / "trajectory.h5",
            atoms.numbers,
            self.masses,
            cell_A,
            topo.molecule,
            list(topo.label),
            params,
            resume_frames=progress.nvt_frames if progress.steps_done else None,
        )
        ev = kj_per_mol_to_ev(1.0)

        def on_interval(step: int) -> None:
            obs, p, v, _ = self.engine.snapshot()
            check_finite(obs, phase, step * c.timestep_fs / 1000)
            writer.append(
                step,
                step * c.timestep_fs / 1000.0,
                p * 10.0,
                v * 10.0,
                {
                    "potential_energy": obs["potential_kJ_mol"] * ev,
                    "kinetic_energy": obs["kinetic_kJ_mol"] * ev,
                    "total_energy": (obs["potential_kJ_mol"] + obs["kinetic_kJ_mol"]) * ev,
                    "conserved_energy": float("nan"),
                    "temperature": obs["temperature_K"],
                    "max_force": float("nan"),
                },
            )

        def commit_then_checkpoint() -> None:
            progress.nvt_frames = writer.commit()
            save_checkpoint(self.rdir / CHECKPOINT, self.engine.context, progress)

        self._checkpoint = commit_then_checkpoint
        try:
            return self._md(
                phase, progress, c.nvt_ps, c.timestep_fs, steps(c.save_every_ps, c.timestep_fs), on_interval
            )
        finally:
            writer.f.close()

    def phase_sample(self, phase, progress, pos, vel, box) -> tuple:
        from deepeut.systems.task import write_extxyz

        c = self.c
        temperature = float(phase.split("_")[1][:-1])
        self._start(
            phase,
            progress,
            pos,
            vel if progress.steps_done else None,
            box,
            Constraints.none,
            c.sample_timestep_fs,
            temperature,
        )
        every = steps(c.sample_every_ps, c.sample_timestep_fs)

        def on_interval(step: int) -> None:
            obs, p, _, b = self.engine.snapshot()
            check_finite(obs, phase, step * c.sample_timestep_fs / 1000)
            frame = self.box.atoms.copy()
            frame.set_cell(b * 10.0)
            frame.positions = p * 10.0
            frame.arrays["molecule"] = self.box.topology.molecule.copy()
            frame.info.update(
                {
                    "temperature_K": temperature,
                    "time_ps": step * c.sample_timestep_fs / 1000,
                    "source": "classical",
                    "force_field": f"{c.ff_atom_types}/{c.ff_charge_method}",
                }
            )
            write_extxyz(self.rdir / "samples" / f"{temperature:g}K_{step // every:04d}.extxyz", frame)

        return self._md(
            phase, progress, c.sample_every_ps * c.samples_per_temperature, c.sample_timestep_fs, every, on_interval
        )

    # ------------------------------------------------------------------ outputs
    def summary(self, progress: Progress) -> Dict:
        from deepeut.trajectory.h5md import H5MDTrajectory
        from deepeut.systems import MoleculeRecognizer

        atoms, topo = self.box.atoms, self.box.topology
        target = self.cfg.system.density_g_cm3
        rho = np.asarray(progress.npt_density)
        half = rho[len(rho) // 2 :]  # the second half of the NPT run
        rho_mean, rho_sem = mean_and_sem(half) if len(half) else (float("nan"), float("nan"))
        with H5MDTrajectory(self.rdir / "trajectory.h5") as tr:
            temp, epot = tr.observable("temperature"), tr.observable("potential_energy") * KJ_PER_MOL_IN_EV
            last = tr.positions(slice(tr.n_frames - 1, tr.n_frames))[0]
            vel = tr.velocities(slice(tr.n_frames - 1, tr.n_frames))[0]
            cell = tr.cell
            picks = np.unique(np.linspace(0, tr.n_frames - 1, min(tr.n_frames, 20)).astype(int))
            contacts: Dict[str, float] = {}
            for k in picks:
                for pair, r in closest_contacts(
                    tr.positions(slice(k, k + 1))[0], atoms.numbers, cell, topo.molecule
                ).items():
                    contacts[pair] = min(contacts.get(pair, np.inf), r)
        rec = MoleculeRecognizer.for_system(self.cfg.system).recognise(last, atoms.numbers, cell)
        intact = bool(rec.ok and rec.counts() == topo.counts())
        self.write_box(last, vel, cell)
        t_mean, t_sem = mean_and_sem(temp)
        md_ps = dict(progress.simulated_ps)
        wall = sum(progress.wall_s.values())
        violations = contact_violations(contacts)
        return {
            "n_atoms": len(atoms),
            "box_edge_A": float(cell[0, 0]),
            "npt_density_g_cm3": rho_mean,
            "npt_density_sem_g_cm3": rho_sem,
            "system_density_g_cm3": target,
            "npt_density_deviation": rho_mean / target - 1,
            "nvt_density_g_cm3": density_g_cm3(float(self.masses.sum()), abs(float(np.linalg.det(cell)))),
            "nvt_temperature_mean_K": t_mean,
            "nvt_temperature_sem_K": t_sem,
            "nvt_potential_mean_kJ_mol": float(np.mean(epot)),
            "nvt_frames": int(len(temp)),
            "simulated_ps": md_ps,
            "wall_s": round(wall, 1),
            "ns_per_day": sum(md_ps.values()) / 1000.0 / (wall / 86400.0) if wall > 0 else float("nan"),
            "closest_intermolecular_A": contacts,
            "short_contacts": violations,
            "molecules_intact": intact,
            "molecule_problems": [str(p) for p in rec.problems[:3]],
            "n_samples": len(list((self.rdir / "samples").glob("*.extxyz"))),
            "units": {"density": "g/cm3", "temperature": "K", "energy": "kJ/mol", "length": "Angstrom", "time": "ps"},
        }

    def write_box(self, positions_A: np.ndarray, velocities_A_ps: np.ndarray, cell_A: np.ndarray) -> None:
        from deepeut.trajectory.h5md import ase_velocity_to_A_ps
        from deepeut.systems.task import write_extxyz

        atoms = self.box.atoms.copy()
        atoms.set_cell(cell_A)
        atoms.positions = positions_A
        atoms.set_velocities(velocities_A_ps / ase_velocity_to_A_ps())
        atoms.arrays["molecule"] = self.box.topology.molecule.copy()
        atoms.info.update(
            {
                "system": self.cfg.system.name,
                "scale": self.cfg.scale.name,
                "source": "classical",
                "constraints": self.c.constraints.value,
                "temperature_K": self.c.temperature_K,
            }
        )
        write_extxyz(self.rdir / "box.extxyz", atoms)
        self.box.topology.write(self.rdir / "topology.json")


def replica_build(cfg: Config, r: int):
    return dataclasses.replace(cfg.build, seed=cfg.build.seed + REPLICA_SEED_STRIDE * r)


def classical(cfg: Config, out: Path) -> Dict:
    """``stage=classical`` from the command line: :func:`run_classical` with ``classical.replicas`` boxes."""
    return run_classical(cfg, cfg.classical.replicas, out).to_json()


def run_classical(cfg: Config, n_replicas: int, out: Path) -> ClassicalOutput:
    """Equilibrate ``n_replicas`` independently packed boxes of ``cfg.system`` at ``cfg.scale``; the liquids are
    ``replica_<r>/box.extxyz`` (with ``topology.json`` beside)."""
    import json

    from deepeut.classical.system import cutoff_for_box
    from deepeut.systems.box import build_box

    c = cfg.classical
    t0 = time.perf_counter()
    params = system_parameters(cfg.system.species, c)
    replicas = []
    for r in range(n_replicas):
        rdir = out / f"replica_{r}"
        done = rdir / "replica.json"
        if done.exists():
            replicas.append(json.loads(done.read_text()))
            continue
        rdir.mkdir(parents=True, exist_ok=True)
        box = build_box(cfg.system, cfg.scale.n_ion_pairs, replica_build(cfg, r))
        cutoff_for_box(box.atoms.cell.array, c)  # a box too small is refused before any work
        rec = ReplicaRunner(cfg, box, params, rdir).run()
        write_json_atomic(done, rec)
        replicas.append(rec)
        log.info(
            "classical replica %d: NPT density %.3f ± %.3f g/cm³ (system %.3f), ⟨T⟩ %.1f K, %.0f ns/day%s",
            r,
            rec["npt_density_g_cm3"],
            rec["npt_density_sem_g_cm3"],
            rec["system_density_g_cm3"],
            rec["nvt_temperature_mean_K"],
            rec["ns_per_day"],
            ""
            if rec["molecules_intact"] and not rec["short_contacts"]
            else f"; WARNING: {'; '.join(rec['short_contacts'] + rec['molecule_problems'])}",
        )
    summary = {
        "system": cfg.system.name,
        "scale": cfg.scale.name,
        "replicas": replicas,
        "force_field": {
            "atom_types": c.ff_atom_types,
            "charges": c.ff_charge_method,
            "ion_set": c.ff_ion_frcmod,
            "ionic_charge_scale": c.ionic_charge_scale,
            "ambertools": ambertools_version(),
            "constraints": c.constraints.value,
            "parameters": {p.name: p.mol2.name for p in params},
        },
        "cutoff_A": cutoff_for_box(np.diag([replicas[0]["box_edge_A"]] * 3), c),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    write_json_atomic(out / "classical.json", summary)
    print(classical_text(summary), flush=True)
    liquids = Structures.of([out / f"replica_{r}" / "box.extxyz" for r in range(n_replicas)])
    return ClassicalOutput(liquids, out / "classical.json")


def classical_text(summary: Dict) -> str:
    lines = [
        f"classical equilibration ({summary['force_field']['atom_types']}/{summary['force_field']['charges']}, "
        f"ionic charges × {summary['force_field']['ionic_charge_scale']:g}) of {summary['system']} "
        f"at scale {summary['scale']}",
        f"{'replica':>7}{'atoms':>7}{'ρ NPT (g/cm³)':>16}{'paper ρ':>9}{'dev':>8}{'⟨T⟩ (K)':>10}{'ns/day':>8}  checks",
    ]
    for r, s in enumerate(summary["replicas"]):
        checks = (
            "ok"
            if s["molecules_intact"] and not s["short_contacts"]
            else "; ".join(s["short_contacts"] + (["molecules changed"] if not s["molecules_intact"] else []))
        )
        lines.append(
            f"{r:>7}{s['n_atoms']:>7}{s['npt_density_g_cm3']:>10.3f} ± {s['npt_density_sem_g_cm3']:<4.3f}"
            f"{s['system_density_g_cm3']:>9.3f}{100 * s['npt_density_deviation']:>7.1f}%"
            f"{s['nvt_temperature_mean_K']:>10.1f}{s['ns_per_day']:>8.0f}  {checks}"
        )
    return "\n".join(lines)
