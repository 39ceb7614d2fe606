"""``md.engine=torchsim``: all replicas advance together as one batched torch-sim state on ``device``.

Forces come from nequip's ``NequIPTorchSimCalc`` around one graph for all replicas (vesin-torch neighbour list
with a Verlet skin on the device) on which every committee member is evaluated, and the velocity-Verlet step from
torch-sim; the thermostat is :class:`BatchedNoseHooverChain`, one chain per replica. torch-sim 0.3.0's
own ``nvt_nose_hoover`` is not used: it couples all replicas to a single chain, and on this machine its first step
already blew the momenta up 200-fold (chain momentum 8e5); torch-sim >= 0.4 needs Python >= 3.12, for which no
CPU torch 2.13 wheel exists here. Units: torch-sim metal units (Å, eV, amu; time in sqrt(amu Å²/eV)).

Each replica gets ``replica_<r>/trajectory.h5`` and ``md.json`` like the ASE engine; ``checkpoint.pt`` in the
stage folder holds the batched state, chains, step and committed frame counts. A failed safety check stops the
whole batch (``md.on_unstable=stop``) or truncates every replica at the last good frame (``truncate``).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from deepeut.md.engines.base import Engine, Potential, h5md_parameters

log = logging.getLogger(__name__)

#: fourth-order Suzuki–Yoshida weights for the chain sub-steps
SY3 = (1.0 / (2.0 - 2.0 ** (1.0 / 3.0)), 1.0 - 2.0 / (2.0 - 2.0 ** (1.0 / 3.0)), 1.0 / (2.0 - 2.0 ** (1.0 / 3.0)))


class BatchedNoseHooverChain:
    """Nosé–Hoover chains (Martyna–Tuckerman–Klein), one per system of a batch; same masses as ASE's NHC.

    Q_0 = N_f kT τ², Q_j = kT τ² with N_f = 3 N (per system); all tensors (n_systems, chain_length).
    """

    def __init__(self, n_atoms, kT: float, tau: float, chain_length: int):
        import torch

        n_atoms = torch.as_tensor(n_atoms, dtype=torch.float64)
        self.dof = 3.0 * n_atoms
        self.kT = kT
        s = len(n_atoms)
        self.Q = torch.full((s, chain_length), kT * tau**2, dtype=torch.float64)
        self.Q[:, 0] *= self.dof
        self.eta = torch.zeros((s, chain_length), dtype=torch.float64)
        self.p_eta = torch.zeros((s, chain_length), dtype=torch.float64)

    def to(self, device):
        for k in ("dof", "Q", "eta", "p_eta"):
            setattr(self, k, getattr(self, k).to(device))
        return self

    def _g(self, j: int, ke2):
        return (ke2 - self.dof * self.kT) if j == 0 else (self.p_eta[:, j - 1] ** 2 / self.Q[:, j - 1] - self.kT)

    def _kick_chain(self, delta: float, ke2, reverse: bool) -> None:
        import torch

        m = self.Q.shape[1]
        order = range(m - 1, -1, -1) if reverse else range(m)
        for j in order:
            if j == m - 1:
                self.p_eta[:, j] += 0.5 * delta * self._g(j, ke2)
                continue
            damp = torch.exp(-0.25 * delta * self.p_eta[:, j + 1] / self.Q[:, j + 1])
            self.p_eta[:, j] = damp * (damp * self.p_eta[:, j] + 0.5 * delta * self._g(j, ke2))

    def half_step(self, momenta, masses, system_idx, dt: float):
        """Propagate chains and rescale momenta over dt/2 (Suzuki–Yoshida order 4); returns new momenta."""
        import torch

        ke2 = torch.zeros_like(self.dof).index_add_(0, system_idx, (momenta**2).sum(1) / masses)
        for w in SY3:
            delta = w * dt / 2.0
            self._kick_chain(delta, ke2, reverse=True)
            scale = torch.exp(-delta * self.p_eta[:, 0] / self.Q[:, 0])
            momenta = momenta * scale[system_idx, None]
            ke2 = ke2 * scale**2
            self.eta += delta * self.p_eta / self.Q
            self._kick_chain(delta, ke2, reverse=False)
        return momenta

    def energy(self):
        """Thermostat energy per system (eV): Σ p²/2Q + N_f kT η_0 + kT Σ_j≥1 η_j."""
        return (
            (self.p_eta**2 / (2 * self.Q)).sum(1)
            + self.dof * self.kT * self.eta[:, 0]
            + self.kT * self.eta[:, 1:].sum(1)
        )

    def state(self) -> Dict:
        return {"eta": self.eta.cpu(), "p_eta": self.p_eta.cpu()}

    def load(self, st: Dict) -> None:
        self.eta.copy_(st["eta"])
        self.p_eta.copy_(st["p_eta"])


def velocity_verlet_unwrapped(state, dt: float, model) -> Dict:
    """One velocity-Verlet step in place, without wrapping positions into the cell (trajectories stay unwrapped
    for diffusion analysis; torch-sim's own step wraps); returns the model's output at the new positions."""
    state.momenta = state.momenta + 0.5 * dt * state.forces
    state.positions = state.positions + dt * state.momenta / state.masses[:, None]
    out = model(state)
    state.energy, state.forces = out["energy"], out["forces"]
    state.momenta = state.momenta + 0.5 * dt * state.forces
    return out


def committee_forward(ensemble, data: Dict) -> Dict:
    """The members' mean energy (eV per system) and forces (eV/Å) on one graph ``data`` of ``ensemble``
    (deepeut.training.potential.Ensemble), with the per-atom force uncertainty (Eq. 6, eV/Å) under
    ``force_uncertainty`` when there is more than one member."""
    from nequip.data import AtomicDataDict

    from deepeut.training.potential import force_uncertainty

    energies, forces = ensemble.member_outputs(data)
    out = {AtomicDataDict.TOTAL_ENERGY_KEY: energies.mean(dim=0), AtomicDataDict.FORCE_KEY: forces.mean(dim=0)}
    if len(forces) > 1:
        out["force_uncertainty"] = force_uncertainty(forces)
    return out


def torchsim_model(potential: Potential):
    """One member or the committee mean of all of them as one torch-sim model on the potential's device: the graph
    (type mapping, vesin-torch neighbour list with the potential's Verlet skin, on the device) is built once per
    step and every member is evaluated on it."""
    import torch
    from nequip.integrations.torchsim import NequIPTorchSimCalc

    from deepeut.training.potential import Ensemble

    ensemble = Ensemble.load(
        potential.path,
        device=potential.device,
        members=None if potential.member is None else [potential.member],
        skin_A=potential.skin_A,
        committee_eval=potential.committee_eval,
    )

    class Committee(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.members = torch.nn.ModuleList(ensemble.models)

        def forward(self, data: Dict) -> Dict:
            return committee_forward(ensemble, data)

    class Calculator(NequIPTorchSimCalc):
        def save_extra_outputs(self, out: Dict, results: Dict) -> None:
            if "force_uncertainty" in out:
                results["force_uncertainty"] = out["force_uncertainty"].detach()

    calc = Calculator(Committee(), device=potential.device, transforms=ensemble.transforms)
    calc.compute_stress = False  # NVT: no virial, so no cell-displacement gradients
    return calc


class TorchSimEngine(Engine):
    name = "torchsim"

    def run(self, setups: List, md, potential: Potential, out: Path) -> List[Dict]:
        return run_batch(setups, md, potential, out)


def run_batch(setups: List, md, potential: Potential, out: Path) -> List[Dict]:
    """Run all replicas of ``setups`` side by side in one batched state (see module docstring)."""
    import torch
    import torch_sim as ts

    from deepeut.md.dynamics import init_velocities
    from deepeut.trajectory.h5md import H5MDWriter
    from deepeut.md.replica import n_steps as total_steps, save_interval, summarise, uncertainty_observables
    from deepeut.md.safety import SimulationExploded, check_frame
    from deepeut.utils.io import atomic_path, write_json_atomic

    device = torch.device(potential.device)
    U = ts.units.MetalUnits
    for s in setups:
        if not s.use_start_velocities:
            init_velocities(s.atoms, md.temperature_K, s.seed)
    state = ts.io.atoms_to_state([s.atoms for s in setups], device=device, dtype=torch.float64)
    from deepeut.trajectory.h5md import ase_velocity_to_A_ps

    vel_A_ps = np.concatenate([s.atoms.get_velocities() * ase_velocity_to_A_ps() for s in setups])
    # U.velocity converts Å/ps to torch-sim's Å / sqrt(amu Å²/eV)
    state.momenta = (
        torch.as_tensor(vel_A_ps, dtype=torch.float64, device=device) * float(U.velocity) * state.masses[:, None]
    )
    model = torchsim_model(potential)
    kT = md.temperature_K * float(U.temperature)
    dt = md.timestep_fs / 1000.0 * float(U.time)
    n_atoms = [len(s.atoms) for s in setups]
    chain = BatchedNoseHooverChain(n_atoms, kT, md.thermostat_tau_ps * float(U.time), md.chain_length).to(device)
    ckpt_path = out / "checkpoint.pt"
    step = 0
    ckpt = torch.load(ckpt_path, weights_only=False) if ckpt_path.exists() else None
    if ckpt is not None:
        state.positions, state.momenta, step = ckpt["positions"].to(device), ckpt["momenta"].to(device), ckpt["step"]
        chain.load(ckpt["chain"])
    result = model(state)
    state.energy, state.forces = result["energy"], result["forces"]
    state_uncertainty = result.get("force_uncertainty")  # per atom, committee only
    writers = [
        H5MDWriter(
            out / f"replica_{r}" / "trajectory.h5",
            s.atoms.numbers,
            s.atoms.get_masses(),
            s.atoms.cell.array,
            s.molecule,
            s.labels,
            h5md_parameters(md, "torchsim", s.seed, potential.driver),
            resume_frames=ckpt["n_frames"][r] if ckpt else None,
        )
        for r, s in enumerate(setups)
    ]
    bounds = np.cumsum([0] + n_atoms)
    every, nsteps = save_interval(md), total_steps(md)

    def save_frames(step: int) -> None:
        pos = state.positions.detach().cpu().numpy()
        vel = (state.momenta / state.masses[:, None]).detach().cpu().numpy() / float(U.velocity)  # Å/ps
        forces = state.forces.detach().cpu().numpy()
        ke = (0.5 * (state.momenta**2).sum(1) / state.masses).detach()
        ke = torch.zeros(len(setups), dtype=ke.dtype, device=ke.device).index_add_(0, state.system_idx, ke).cpu()
        epot, thermo = state.energy.detach().cpu().numpy(), chain.energy().cpu().numpy()
        u = state_uncertainty.detach().cpu().numpy() if state_uncertainty is not None else None
        for r, (s, w) in enumerate(zip(setups, writers)):
            sl = slice(bounds[r], bounds[r + 1])
            temp = 2 * float(ke[r]) / (3 * n_atoms[r] * float(U.temperature))
            try:
                fmax = check_frame(
                    forces[sl],
                    temp,
                    pos[sl],
                    s.atoms.numbers,
                    s.atoms.cell.array,
                    md,
                    s.recognizer,
                    s.expected_counts,
                    w.n_frames,
                    step,
                )
            except SimulationExploded as exc:
                raise ReplicaExploded(r, step, f"replica {r}, {exc}") from None
            w.append(
                step,
                step * md.timestep_fs / 1000.0,
                pos[sl],
                vel[sl],
                {
                    "potential_energy": epot[r],
                    "kinetic_energy": float(ke[r]),
                    "total_energy": epot[r] + float(ke[r]),
                    "conserved_energy": epot[r] + float(ke[r]) + thermo[r],
                    "temperature": temp,
                    "max_force": fmax,
                    **uncertainty_observables(u[sl] if u is not None else None),
                },
            )

    def checkpoint(step: int) -> None:
        n_frames = [w.commit() for w in writers]
        with atomic_path(ckpt_path) as tmp:
            torch.save(
                {
                    "positions": state.positions.cpu(),
                    "momenta": state.momenta.cpu(),
                    "step": step,
                    "chain": chain.state(),
                    "n_frames": n_frames,
                },
                tmp,
            )

    from tqdm.auto import tqdm

    def save_or_truncate(step: int):
        """Save the frames of ``step``; on a failed check: raise (stop) or truncate the batch (returned)."""
        before = [w.n_frames for w in writers]
        try:
            save_frames(step)
        except ReplicaExploded as exc:
            if md.on_unstable != "truncate":
                raise SimulationExploded(str(exc)) from None
            return truncate_batch(writers, before, exc, md)
        return None

    t0, start = time.perf_counter(), step
    stopped = save_or_truncate(0) if step == 0 else None
    bar = tqdm(total=nsteps, initial=step, desc=f"torch-sim MD ({len(setups)} replicas)", unit="step")
    try:
        while step < nsteps and stopped is None:
            state.momenta = chain.half_step(state.momenta, state.masses, state.system_idx, dt)
            state_uncertainty = velocity_verlet_unwrapped(state, dt, model).get("force_uncertainty")
            state.momenta = chain.half_step(state.momenta, state.masses, state.system_idx, dt)
            step += 1
            if step % every == 0 and (stopped := save_or_truncate(step)) is not None:
                break
            if step % md.checkpoint_every_steps == 0 or step == nsteps:
                checkpoint(step)
            bar.update(1)
    finally:
        bar.close()
        for w in writers:
            w.f.close()
    wall = time.perf_counter() - t0
    summaries: List[Dict] = []
    for r in range(len(setups)):
        s = summarise(out / f"replica_{r}" / "trajectory.h5", md, wall, step - start)
        s["aggregate_ns_per_day"] = s["ns_per_day"] * len(setups) if math.isfinite(s["ns_per_day"]) else s["ns_per_day"]
        s["engine"] = "torchsim"
        if stopped:
            s["stopped_early"] = stopped[r]
        write_json_atomic(out / f"replica_{r}" / "md.json", s)
        summaries.append(s)
    return summaries


class ReplicaExploded(RuntimeError):
    """A safety check failed for replica ``replica`` of the batch at ``step``."""

    def __init__(self, replica: int, step: int, message: str):
        super().__init__(message)
        self.replica, self.step = replica, step


def truncate_batch(writers, frames_before, exc: ReplicaExploded, md) -> Dict[int, Dict]:
    """``md.on_unstable=truncate`` for a batch: every replica keeps its frames before the failed save (they all
    passed their checks); the batch ends there, the failed replica with the reason, the others with a note."""
    time_ps = exc.step * md.timestep_fs / 1000.0
    out = {}
    for r, (w, n) in enumerate(zip(writers, frames_before)):
        kept = w.keep_first(n)
        failed = r == exc.replica
        out[r] = {
            "step": exc.step,
            "time_ps": time_ps,
            "frames_kept": kept,
            "failed": failed,
            "frame": "",
            "reason": str(exc) if failed else f"the batch stopped with replica {exc.replica}: {exc}",
        }
    log.warning(
        "torch-sim batch stopped at %.3f ps (%s); every replica keeps its %s frames before it "
        "(md.on_unstable=truncate)",
        time_ps,
        exc,
        frames_before,
    )
    return out
