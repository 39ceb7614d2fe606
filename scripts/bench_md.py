#!/usr/bin/env python
"""MD step overhead: deepeut's ASE engine (H5MD, checkpoints, safety checks, progress) vs a bare ASE
NoseHooverChainNVT loop with nequip's own ASE calculator, same model and box, one run; then the cost of the
committee mean against one member (ASE calculator and torch-sim model) on ``--device``.

    .venv/bin/python scripts/bench_md.py --ensemble outputs/ura_ensemble [--steps 400] [--device cuda] [--scale train]
        [--compiled]
    .venv/bin/python scripts/bench_md.py --ensemble deepeut/models/ura --box .gpu/ura_production.extxyz --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--calls", type=int, default=20, help="force calls timed for the committee comparison")
    ap.add_argument("--scale", default="tiny", help="box size: tiny (88-128 atoms), small, train (352-512), production")
    ap.add_argument(
        "--box",
        help="an extxyz box (e.g. built here with stage=build and carried to a GPU machine without packmol): "
        "time only the committee and the neighbour list on it, not the MD driver",
    )
    ap.add_argument(
        "--replicas", type=int, default=1, help="with --box: also time this many replicas as one batched state"
    )
    ap.add_argument("--compiled", action="store_true", help="also time members compiled ahead of time (md.compiled)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.box:
        from ase.io import read

        atoms = read(args.box)
        committee_cost(args, atoms)
        neighbour_list_cost(args, atoms)
        if args.replicas > 1:
            batched_replicas_cost(args, atoms)
        return
    from nequip.integrations.ase import NequIPCalculator

    from deepeut.config import compose, validate
    from deepeut.md.dynamics import init_velocities
    from deepeut.md.replica import ReplicaSetup, run_replica
    from deepeut.md.engines import resolve_potential
    from deepeut.md.task import md_calculator, relax_packed_box, start_structure
    from deepeut.training.contract import use_matmul_contractions
    from deepeut.training.potential import member_model_files

    cfg = validate(
        compose(
            [
                f"committee={args.ensemble}",
                f"scale={args.scale}",
                f"md.duration_ps={args.steps * 0.5 / 1000}",
                "md.save_every_fs=10",
                "logger=none",
                f"device={args.device}",
                "md.ensemble_member=0",
            ]
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        setup = start_structure(cfg, 0, Path(tmp) / "box")
        atoms = setup.atoms
        # a freshly packed box heats past the safety limit within 20 fs: relax it as the MD stage does
        potential = resolve_potential(cfg, args.ensemble, 0, Path(tmp))
        relax_packed_box(atoms, potential, cfg.md.relax_packed_steps, cfg.md.relax_fmax_eV_A)
        # bare ASE with nequip's calculator
        bare = atoms.copy()
        init_velocities(bare, 353.0, 0)
        bare.calc = NequIPCalculator._from_saved_model(
            str(member_model_files(args.ensemble)[0]), device=args.device, chemical_species_to_atom_type_map=True
        )
        t_stock = bare_md_seconds(bare.copy(), bare.calc, args.steps)
        use_matmul_contractions(bare.calc.model)  # the same contraction as deepeut's: the driver alone compared
        t_bare = bare_md_seconds(bare, bare.calc, args.steps)
        # deepeut's engine (model loaded the same way, H5MD every 20 steps, checkpoints every 200, checks)
        setup.calculator = md_calculator(cfg, Path(tmp))
        t0 = time.perf_counter()
        summary = run_replica(
            ReplicaSetup(
                atoms=atoms,
                calculator=setup.calculator,
                seed=0,
                molecule=setup.molecule,
                labels=setup.labels,
                recognizer=setup.recognizer,
                expected_counts=setup.expected_counts,
            ),
            cfg.md,
            Path(tmp) / "run",
            progress=False,
        )
        t_ours = time.perf_counter() - t0
    if "stopped_early" in summary:
        sys.exit(f"deepeut's run stopped early ({summary['stopped_early']['reason']}): no overhead to compare")
    print(f"NVT MD, {len(atoms)} atoms, {args.steps} steps of 0.5 fs")
    print(f"  bare ASE + NequIPCalculator {1000 * t_stock / args.steps:7.1f} ms/step   (Allegro's own contraction)")
    print(f"  the same, matmul contraction{1000 * t_bare / args.steps:7.1f} ms/step")
    print(
        f"  deepeut md.engine=ase       {1000 * t_ours / args.steps:7.1f} ms/step   overhead "
        f"{100 * (t_ours / t_bare - 1):+.0f} % (H5MD, checkpoints, molecule checks, progress); "
        f"{t_stock / t_ours:.2f}× the speed of the stock loop"
    )
    committee_cost(args, atoms)
    neighbour_list_cost(args, atoms)


def bare_md_seconds(atoms, calc, steps: int) -> float:
    """Seconds of ``steps`` 0.5 fs steps of ASE's NoseHooverChainNVT at 353 K with ``calc``, after 5 warm-up steps."""
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    atoms.calc = calc
    dyn = NoseHooverChainNVT(atoms, timestep=0.5 * units.fs, temperature_K=353.0, tdamp=50 * units.fs, tchain=3)
    dyn.run(5)
    t0 = time.perf_counter()
    dyn.run(steps)
    return time.perf_counter() - t0


def timed(call, calls: int, device: str, warmup: int = 3) -> float:
    """Median ms of ``call(k)``, k = 0 … calls − 1, after ``warmup`` calls (k = calls, …: the first calls of a
    fresh model pay for allocations and thread start-up), waiting for ``device`` around each."""
    import numpy as np
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    for k in range(warmup):
        call(calls + k)
    times = []
    for k in range(calls):
        sync()
        t0 = time.perf_counter()
        call(k)
        sync()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def committee_cost(args, atoms) -> None:
    """ms per energy+force call: one member vs the committee mean (members called one by one on the shared graph,
    or one vmapped call over their stacked weights), ASE calculator and torch-sim model."""
    import torch
    import torch_sim as ts

    from deepeut.md.engines import Potential
    from deepeut.md.engines.torchsim import torchsim_model
    from deepeut.training.potential import Ensemble

    committee = Ensemble.load(args.ensemble, device=args.device)
    warm = atoms.copy()  # the process's first model calls are slower (thread pools, allocator): pay them here
    warm.calc = committee.calculator()
    for k in range(5):
        warm.rattle(1e-4, seed=1000 + k)
        warm.get_forces()
    rows = []
    cases = [
        ("one member", 0, "loop", True, False),
        ("committee", None, "loop", True, False),
        ("committee vmap", None, "vmap", True, False),
        ("member, stock", 0, "loop", False, False),
    ]
    if args.compiled:  # members compiled ahead of time (md.compiled; the first use compiles, ~1.5 min per member)
        cases += [("member, compiled", 0, "loop", True, True), ("committee, compiled", None, "loop", True, True)]
    for name, member, how, matmul, compiled in cases:
        a = atoms.copy()
        ensemble = Ensemble.load(
            args.ensemble, device=args.device, committee_eval=how, matmul_contractions=matmul, compiled=compiled
        )
        a.calc = ensemble.calculator(member=member)

        def ase_call(k, a=a):
            a.rattle(1e-4, seed=k)
            a.get_forces()

        t_ts = float("nan")
        if matmul and not compiled:  # torch-sim loads its members eager with the matmul contraction
            model = torchsim_model(Potential(Path(args.ensemble), member, args.device, committee_eval=how))
            state = ts.io.atoms_to_state([atoms], device=torch.device(args.device), dtype=torch.float64)
            t_ts = timed(lambda k: model(state), args.calls, args.device)
        rows.append((name, timed(ase_call, args.calls, args.device), t_ts))
    print(f"energy + forces, {len(atoms)} atoms, {args.device}: ms per call (ASE calculator | torch-sim model)")
    for name, t_ase, t_ts in rows:
        print(f"  {name:<15} {t_ase:8.1f} | {t_ts:8.1f}")
    for name, t_ase, t_ts in rows[1:3]:
        ratios = f"{t_ase / rows[0][1]:.2f}× (ASE), {t_ts / rows[0][2]:.2f}× (torch-sim)"
        print(f"  {name} / one member: {ratios}; target ≤ 2.5×")
    print(
        f"  one member with Allegro's own contraction / with the matmul one: {rows[3][1] / rows[0][1]:.2f}× (ASE)"
        ", the stock committee would cost "
        f"{(rows[1][1] + 3 * (rows[3][1] - rows[0][1])) / rows[0][1]:.2f}× this member"
    )
    concurrent_members_cost(args, committee, atoms)
    if args.compiled:
        print(
            f"  compiled / eager: member {rows[4][1] / rows[0][1]:.2f}×, committee {rows[5][1] / rows[1][1]:.2f}× "
            f"(ASE); compiled committee / compiled member {rows[5][1] / rows[4][1]:.2f}×"
        )


def concurrent_members_cost(args, ensemble, atoms) -> None:
    """ms of the members' networks alone on one shared graph: one member, the three one after another, and the three
    from concurrent Python threads (torch ops release the GIL), so the committee's floor on this device shows."""
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from nequip.data import AtomicDataDict

    graph = ensemble.graphs([atoms])

    def member_call(model):  # each call differentiates its own copy of the positions
        data = dict(graph)
        data[AtomicDataDict.POSITIONS_KEY] = graph[AtomicDataDict.POSITIONS_KEY].detach().clone()
        return model(data)

    models = ensemble.models
    with ThreadPoolExecutor(len(models)) as pool:
        t_one = timed(lambda k: member_call(models[0]), args.calls, args.device)
        t_loop = timed(lambda k: [member_call(m) for m in models], args.calls, args.device)
        t_pool = timed(lambda k: list(pool.map(member_call, models)), args.calls, args.device)
    print(
        f"  networks only, shared graph ({torch.get_num_threads()} torch threads): one member {t_one:.1f} ms, "
        f"{len(models)} one after another {t_loop:.1f} ({t_loop / t_one:.2f}×), "
        f"{len(models)} from concurrent threads {t_pool:.1f} ({t_pool / t_one:.2f}×)"
    )


def batched_replicas_cost(args, atoms) -> None:
    """Committee energy + forces of ``--replicas`` copies of the box (rattled apart) as one batched torch-sim state
    (AL exploration's batch) vs one after another: the throughput ratio."""
    import torch
    import torch_sim as ts

    from deepeut.md.engines import Potential
    from deepeut.md.engines.torchsim import torchsim_model

    copies = []
    for k in range(args.replicas):
        a = atoms.copy()
        a.rattle(0.02, seed=k)
        copies.append(a)
    device = torch.device(args.device)
    model = torchsim_model(Potential(Path(args.ensemble), None, args.device))
    batch = ts.io.atoms_to_state(copies, device=device, dtype=torch.float64)
    singles = [ts.io.atoms_to_state([a], device=device, dtype=torch.float64) for a in copies]
    calls = max(2, args.calls // 4)
    t_batch = timed(lambda k: model(batch), calls, args.device)
    t_seq = timed(lambda k: [model(s) for s in singles], calls, args.device)
    print(
        f"{args.replicas} replicas of {len(atoms)} atoms, committee, {args.device}: "
        f"one batched state {t_batch:.1f} ms, one after another {t_seq:.1f} ms: "
        f"throughput × {t_seq / t_batch:.2f} (goal ≥ 5 on a GPU)"
    )


def neighbour_list_cost(args, atoms) -> None:
    """ms per graph build (neighbour list + nequip graph) along a short trajectory of small moves: nequip's own list
    (matscipy, on the CPU) and deepeut's vesin-torch list on the device, rebuilt at every call or with a 1 Å Verlet
    skin, beside one model call."""
    import numpy as np
    from nequip.data.transforms import NeighborListTransform

    from deepeut.training.potential import Ensemble

    rows = []
    for name, skin in (("nequip (matscipy)", None), ("vesin-torch, rebuilt", 0.0), ("vesin-torch, skin 1 Å", 1.0)):
        ens = Ensemble.load(args.ensemble, device=args.device, members=[0], skin_A=skin or 0.0)
        if skin is None:
            ens.transforms[-1] = NeighborListTransform(r_max=ens.r_max)
        a = atoms.copy()
        rng = np.random.default_rng(0)

        def build(k, a=a, ens=ens, rng=rng):
            a.positions += rng.normal(scale=0.01, size=a.positions.shape)
            ens.graphs([a])

        rows.append((name, timed(build, args.calls, args.device)))
    ens = Ensemble.load(args.ensemble, device=args.device, members=[0])
    graph = ens.graphs([atoms])
    model_ms = timed(lambda k: ens.models[0](dict(graph)), args.calls, args.device)
    print(f"graph build, {len(atoms)} atoms, {args.device}: ms per call (one model call: {model_ms:.1f} ms)")
    for name, ms in rows:
        print(f"  {name:<22} {ms:8.2f} ms   {100 * ms / model_ms:5.1f} % of a model call")


if __name__ == "__main__":
    main()
