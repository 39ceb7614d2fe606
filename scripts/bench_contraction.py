#!/usr/bin/env python
"""Allegro's tensor-product contraction: Allegro's own (broadcast product and sum) vs deepeut's batched matrix
products (deepeut.training.contract), for the small and the paper-size model on one box: ms per energy + forces
call and the peak memory of the call, each variant in a fresh process, in one run.

    .venv/bin/python scripts/bench_contraction.py [--system ura] [--scale train] [--device cuda] [--box BOX]

The models are untrained (built from conf/model/*.yaml): the cost of a call does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(args) -> dict:
    """One variant in this process: median ms per call and peak memory (MiB) above the loaded model."""
    import resource
    import time

    import numpy as np
    import torch
    from ase.io import read

    sys.path.insert(0, str(ROOT))
    from deepeut.config import compose, validate
    from deepeut.training.contract import use_matmul_contractions
    from deepeut.training.model import build_allegro
    from deepeut.training.potential import Ensemble

    cfg = validate(compose([f"model={args.model}", f"system={args.system}", f"scale={args.scale}", "logger=none"]))
    if args.box:
        atoms = read(args.box)
    else:
        from deepeut.systems import build_box

        atoms = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build).atoms
    types = sorted(set(atoms.get_chemical_symbols()))
    model = build_allegro(cfg.model, types, avg_num_neighbors=40.0).to(args.device).eval()
    if args.variant == "matmul":
        use_matmul_contractions(model)
    ens = Ensemble([model], types, cfg.model.r_max, args.device, skin_A=0.0)
    graph = ens.graphs([atoms])
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def rss_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    base = torch.cuda.memory_allocated() if cuda else rss_mib()
    times = []
    for _ in range(args.calls + 1):
        sync()
        t0 = time.perf_counter()
        ens.models[0](dict(graph))
        sync()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else rss_mib() - base
    return {
        "ms": 1000 * float(np.median(times[1:])),
        "peak_MiB": peak,
        "atoms": len(atoms),
        "edges": int(graph["edge_index"].shape[1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="ura")
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--box", help="an extxyz box instead of a freshly packed one")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--models", default="allegro_small,allegro_paper")
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:  # the child
        print(json.dumps(measure(args)))
        return
    common = ["--system", args.system, "--scale", args.scale, "--device", args.device, "--calls", str(args.calls)]
    if args.box:
        common += ["--box", args.box]
    for model in args.models.split(","):
        rows = {}
        for variant in ("allegro", "matmul"):
            cmd = [sys.executable, __file__, *common, "--model", model, "--variant", variant]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{model} {variant}: failed\n{res.stderr[-2000:]}")
                break
            rows[variant] = json.loads(res.stdout.strip().splitlines()[-1])
        if len(rows) < 2:
            continue
        a, m = rows["allegro"], rows["matmul"]
        print(f"{model}, {a['atoms']} atoms, {a['edges']} edges, {args.device}: energy + forces per call")
        for name, r in (("Allegro's contraction", a), ("matmul contraction", m)):
            print(f"  {name:<22} {r['ms']:9.1f} ms   peak {r['peak_MiB']:8.0f} MiB above the loaded model")
        print(f"  speed-up × {a['ms'] / m['ms']:.2f}, peak memory × {m['peak_MiB'] / max(a['peak_MiB'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
