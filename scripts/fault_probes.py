#!/usr/bin/env python
"""Fault injection: runs deepeut as a user would and breaks it on purpose, then prints probe | expected | observed.

    .venv/bin/python scripts/fault_probes.py [--work /tmp/deepeut-probes] [--only NAME ...]

Probes: two identical main jobs at once on one stage cache; kill -9 during the classical stage, MD and
training, then the same command again; a disk that fills up during MD (a 600 kB tmpfs, root only); corrupt or
wrong inputs (cut H5MD, start without a cell, an ensemble of another system, a typo). Each probe checks that no
Python traceback reaches the user, that the exit code is what the README promises and that the rerun finishes.
Takes ~10 min on 2 cores; run by hand (or `pytest -m slow tests/test_fault_probes.py`), not in .ci/run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SHORT_MD = [
    "md.duration_ps=0.1",
    "md.save_every_fs=10",
    "classical.npt_ps=2",
    "classical.nvt_ps=1",
    "classical.heat_ps=0.2",
]


def cli(args: List[str], cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, str(ROOT / "run.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def finish(p: subprocess.Popen, timeout: float = 900) -> Tuple[int, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out + err


def kill_when(p: subprocess.Popen, path: Path, timeout: float = 600) -> bool:
    """SIGKILL the process group of ``p`` once ``path`` exists (the stage is under way)."""
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        if path.exists():
            time.sleep(0.5)
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return True
        time.sleep(0.2)
    return False


def clean(rc: int, text: str) -> str:
    return f"rc={rc}, {'TRACEBACK' if 'Traceback' in text else 'no traceback'}"


def probe_concurrent(work: Path) -> Tuple[str, str, bool]:
    args = ["md=production", *SHORT_MD, f"pipeline.cache_dir={work / 'cache'}"]
    a = cli([*args, f"output_dir={work / 'a'}"], work)
    time.sleep(8)
    b = cli([*args, f"output_dir={work / 'b'}"], work)
    (ra, ta), (rb, tb) = finish(a), finish(b)
    ok = (
        {ra, rb} <= {0, 1}
        and 0 in (ra, rb)
        and ("is in use by pid" in ta + tb or ra == rb == 0)
        and "Traceback" not in ta + tb
    )
    return "one runs, the other stops naming it (or reuses its result)", f"{clean(ra, ta)} / {clean(rb, tb)}", ok


def probe_kill(stage_args: List[str], marker: str) -> Callable[[Path], Tuple[str, str, bool]]:
    def run(work: Path) -> Tuple[str, str, bool]:
        out = work / "run"
        p = cli([*stage_args, f"output_dir={out}"], work)
        killed = kill_when(p, out / marker)
        rc, text = finish(cli([*stage_args, f"output_dir={out}"], work))
        return (
            "killed with SIGKILL, then the same command finishes",
            f"killed={killed}, rerun {clean(rc, text)}",
            killed and rc == 0 and "Traceback" not in text,
        )

    return run


def probe_disk_full(work: Path) -> Tuple[str, str, bool]:
    mnt = work / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)]).returncode:
        return "stops in one line, checkpoint kept", "skipped (needs root and tmpfs)", True
    try:
        rc, text = finish(
            cli(
                [
                    "stage=md",
                    "committee=embedded",
                    "md.duration_ps=1",
                    "md.save_every_fs=0.5",
                    "md.checkpoint_every_steps=20",
                    f"output_dir={mnt / 'md'}",
                ],
                work,
            )
        )
        ok = rc == 1 and "No space left on device" in text and (mnt / "md" / "replica_0" / "checkpoint.pkl").exists()
        return "stops in one line, checkpoint kept", clean(rc, text), ok
    finally:
        subprocess.run(["umount", str(mnt)])


def probe_bad(args: List[str], needle: str) -> Callable[[Path], Tuple[str, str, bool]]:
    def run(work: Path) -> Tuple[str, str, bool]:
        rc, text = finish(cli(args, work))
        return f"one line with '{needle}'", clean(rc, text), rc in (1, 2) and needle in text and "Traceback" not in text

    return run


def probe_ok(args: List[str], needle: str) -> Callable[[Path], Tuple[str, str, bool]]:
    def run(work: Path) -> Tuple[str, str, bool]:
        rc, text = finish(cli(args, work))
        return f"runs, saying '{needle}'", clean(rc, text), rc == 0 and needle in text and "Traceback" not in text

    return run


def prepare_bad_inputs(work: Path) -> None:
    from ase.build import molecule
    from ase.io import write

    write(work / "nocell.extxyz", molecule("H2O"))
    (work / "cut.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature and nothing else
    write_dumps(work)


def write_dumps(work: Path) -> None:
    """A 40-frame LAMMPS dump of the tiny URA box (molecules moved rigidly, no velocities), one without its element
    column, one cut in its second frame, and one whose own time field says 0.5 fs per step."""
    import numpy as np

    from deepeut.config import compose, validate
    from deepeut.systems.box import build_box

    cfg = validate(compose(["system=ura"]))
    box = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build)
    mol, el, L = box.topology.molecule, box.atoms.get_chemical_symbols(), np.diag(box.atoms.cell.array)
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(scale=0.2, size=(40, mol.max() + 1, 3)), axis=0)
    walk -= walk[0]
    frames = []
    for t in range(40):
        x = box.atoms.positions + walk[t][mol]
        rows = "".join(
            f"{j + 1} {mol[j] + 1} {el[j]} {x[j, 0]:.5f} {x[j, 1]:.5f} {x[j, 2]:.5f}\n" for j in range(len(x))
        )
        frames.append(
            f"ITEM: TIMESTEP\n{t * 20}\nITEM: TIME\n{t * 20 * 0.5}\nITEM: NUMBER OF ATOMS\n{len(x)}\n"
            "ITEM: BOX BOUNDS pp pp pp\n"
            + "".join(f"0 {v}\n" for v in L)
            + "ITEM: ATOMS id mol element xu yu zu\n"
            + rows
        )
    text = "".join(frames)
    (work / "good.lammpstrj").write_text(text)
    (work / "noelement.lammpstrj").write_text(text.replace(" element ", " type "))
    (work / "cut.lammpstrj").write_text(text[: len(frames[0]) + 300])


PROBES = {
    "concurrent_main_jobs": probe_concurrent,
    "kill_classical": probe_kill(["stage=classical", "classical.npt_ps=20"], "replica_0/checkpoint.npz"),
    "kill_md": probe_kill(
        ["stage=md", "committee=embedded", "md.duration_ps=0.2", "md.checkpoint_every_steps=20"],
        "replica_0/checkpoint.pkl",
    ),
    "kill_training": probe_kill(["stage=train", "train.max_epochs=3"], "member_0/last.ckpt"),
    "disk_full_md": probe_disk_full,
    "cut_h5md": probe_bad(["stage=analysis", "analysis.trajectories=[cut.h5]"], "cannot be read"),
    "start_without_cell": probe_bad(["stage=md", "committee=embedded", "md.start=nocell.extxyz"], "no periodic cell"),
    "ensemble_of_other_system": probe_bad(
        ["stage=md", "system=nma", f"committee={ROOT / 'deepeut/models/ura'}"], "trained for system=ura"
    ),
    "config_typo": probe_bad(["md.temprature_K=300"], "Did you mean 'temperature_K'"),
    "member_out_of_range": probe_bad(["stage=md", "committee=embedded", "md.ensemble_member=7"], "md.ensemble_member"),
    "dump_without_timestep": probe_bad(
        ["stage=analysis", "analysis.trajectories=[good.lammpstrj]"], "analysis.timestep_fs"
    ),
    "dump_wrong_timestep": probe_bad(
        ["stage=analysis", "analysis.trajectories=[good.lammpstrj]", "analysis.timestep_fs=10"],
        "not analysis.timestep_fs = 10 fs",
    ),
    "dump_without_element": probe_bad(
        ["stage=analysis", "analysis.trajectories=[noelement.lammpstrj]", "analysis.timestep_fs=0.5"],
        "needs an 'element' column",
    ),
    "dump_cut_in_last_frame": probe_ok(
        ["stage=analysis", "analysis.trajectories=[cut.lammpstrj]", "analysis.timestep_fs=0.5"], "last frame is cut"
    ),
    "dump_wrong_system": probe_bad(
        ["stage=analysis", "system=act", "analysis.trajectories=[good.lammpstrj]", "analysis.timestep_fs=0.5"],
        "not those of system=act",
    ),
    "analysis_start_beyond_run": probe_bad(
        ["stage=analysis", "analysis.trajectories=[good.lammpstrj]", "analysis.timestep_fs=0.5", "analysis.start_ps=5"],
        "analysis.start_ps",
    ),
    "dump_without_velocities": probe_ok(
        ["stage=analysis", "analysis.trajectories=[good.lammpstrj]", "analysis.timestep_fs=0.5", "analysis.stride=100"],
        "not computed",
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/deepeut-probes"))
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    prepare_bad_inputs(args.work)
    rows, failed = [], 0
    for name, probe in PROBES.items():
        if args.only and name not in args.only:
            continue
        work = args.work / name
        work.mkdir()
        for f in ("nocell.extxyz", "cut.h5", "good.lammpstrj", "noelement.lammpstrj", "cut.lammpstrj"):
            shutil.copy(args.work / f, work / f)
        t0 = time.time()
        expected, observed, ok = probe(work)
        failed += not ok
        rows.append((name, expected, observed, "ok" if ok else "FAILED", f"{time.time() - t0:.0f} s"))
        print(f"{name}: {'ok' if ok else 'FAILED'} ({observed})", flush=True)
    width = [max(len(r[k]) for r in rows + [("probe", "expected", "observed", "", "")]) for k in range(5)]
    print()
    for r in [("probe", "expected", "observed", "", "time"), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, width)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
