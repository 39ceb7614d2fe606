#!/usr/bin/env python
"""MSD and VACF: deepeut's batched FFT vs freud.msd.MSD (window mode) vs tidynamics (per particle), one run.

Random-walk positions and random velocities of N particles over T frames; prints seconds and ratios and the
largest difference between the codes (they must agree).
    .venv/bin/python scripts/bench_msd.py [--particles 1000] [--frames 5000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=5000)
    args = ap.parse_args()
    import freud
    import tidynamics

    from deepeut.analysis.correlate import autocorrelation, msd

    rng = np.random.default_rng(0)
    r = np.cumsum(rng.normal(size=(args.frames, args.particles, 3)), axis=0)
    v = rng.normal(size=(args.frames, args.particles, 3))
    lag = args.frames  # full correlation depth: what freud and tidynamics compute
    ours_msd, t_ours = timed(msd, r, lag)
    box = freud.box.Box.cube(1e6)  # no wrapping: the positions are unwrapped
    f_msd, t_freud = timed(lambda: freud.msd.MSD(box, mode="window").compute(r.astype(np.float64)).msd)
    td_msd, t_td = timed(lambda: np.mean([tidynamics.msd(r[:, i]) for i in range(args.particles)], axis=0))
    print(f"MSD, {args.particles} particles × {args.frames} frames (all lags)")
    for name, t, res in (("deepeut", t_ours, ours_msd), ("freud window", t_freud, f_msd), ("tidynamics", t_td, td_msd)):
        print(
            f"  {name:<13} {t:8.2f} s   deepeut speed-up ×{t / t_ours:6.2f}   "
            f"max rel. diff {np.max(np.abs(res[1:] - ours_msd[1:]) / ours_msd[1:]):.1e}"
        )
    ours_acf, t_ours = timed(autocorrelation, v, lag)
    td_acf, t_td = timed(lambda: np.mean([tidynamics.acf(v[:, i]) for i in range(args.particles)], axis=0))
    print(f"VACF, {args.particles} particles × {args.frames} frames (all lags)")
    for name, t, res in (("deepeut", t_ours, ours_acf), ("tidynamics", t_td, td_acf)):
        print(
            f"  {name:<13} {t:8.2f} s   deepeut speed-up ×{t / t_ours:6.2f}   "
            f"max abs. diff {np.max(np.abs(res - ours_acf)):.1e}"
        )


if __name__ == "__main__":
    main()
