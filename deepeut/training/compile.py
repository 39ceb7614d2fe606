"""Compile the members of a trained ensemble for LAMMPS (``pair_allegro``), TorchSim (``batch``) or ASE.

One command, run where the target toolchain exists (a GPU node for LAMMPS/Kokkos)::

    python -m deepeut.training.compile outputs/.../train --target pair_allegro --device cuda

It calls ``nequip-compile --mode aotinductor`` on each member's best.ckpt (with Allegro's contraction as batched
matrix products, deepeut.training.contract) and writes ``member_<k>/compiled_<target>.nequip.pt2``.

For MD on engine ase, ``md.compiled=true`` compiles each member file (packaged or checkpoint) for the ASE target
on first use (:func:`compiled_member`) into a cache shared by every run on the machine, keyed by the file's
content, the device and the torch version, so that a compiled model is never used with another member, device or
torch than its own.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List

from deepeut.errors import StageError
from deepeut.training.potential import manifest_path

TARGETS = ("pair_allegro", "batch", "ase", "pair_nequip")

log = logging.getLogger(__name__)


class CompileError(StageError):
    """nequip-compile failed for a member; the message names its log."""


def compile_cache() -> Path:
    """Where compiled members are kept: $DEEPEUT_COMPILE_CACHE, else ~/.cache/deepeut/compiled."""
    return Path(os.environ.get("DEEPEUT_COMPILE_CACHE") or Path.home() / ".cache" / "deepeut" / "compiled")


def compiled_member_path(model_file: Path, device: str) -> Path:
    """The cache file of ``model_file`` compiled for the ASE target on ``device`` (``cpu``, ``cuda``, ``cuda:1``:
    a compiled model runs only on the device it was compiled for) with this torch."""
    import torch

    digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:16]
    where = str(torch.device(device)).replace(":", "")
    return compile_cache() / f"{digest}_{where}_torch{torch.__version__.replace('+', '-')}.nequip.pt2"


def compiled_member(model_file: Path, device: str) -> Path:
    """``model_file`` (a member's package or checkpoint) compiled with AOTInductor for the ASE target on
    ``device``, from the cache or compiled now (written under a temporary name, then renamed: two runs compiling
    the same member at once both end with a complete file)."""
    out = compiled_member_path(model_file, device)
    if out.exists():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CompileError(
            f"cannot create the compile cache {out.parent} ({exc.strerror}): set DEEPEUT_COMPILE_CACHE to a "
            "writable folder or run with md.compiled=false"
        ) from None
    tmp = out.with_name(f"{out.name[: -len('.nequip.pt2')]}.{os.getpid()}.tmp.nequip.pt2")
    logfile = out.with_suffix(".log")
    cmd = [sys.executable, "-m", "deepeut.training.nequip_entry", "nequip.scripts.compile", str(model_file), str(tmp)]
    cmd += ["--mode", "aotinductor", "--device", device, "--target", "ase"]
    log.info("compiling %s for %s (once per member, device and torch; ~1.5 min on 2 CPU cores)", model_file, device)
    t0 = time.perf_counter()
    with open(logfile, "w") as flog:
        res = subprocess.run(cmd, stdout=flog, stderr=subprocess.STDOUT)
    if res.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise CompileError(
            f"nequip-compile of {model_file} for {device} failed (exit {res.returncode}); see {logfile}, "
            "or run with md.compiled=false"
        )
    os.replace(tmp, out)
    log.info("compiled in %.0f s: %s", time.perf_counter() - t0, out)
    return out


def load_compiled_member(model_file: Path, device: str):
    """(model, metadata) of ``model_file`` compiled for the ASE target on ``device`` (see :func:`compiled_member`):
    the model takes a nequip graph dict and returns total energy (eV) and forces (eV/Å)."""
    from nequip.integrations.ase import NequIPCalculator
    from nequip.model.inference_models import load_compiled_model

    target = NequIPCalculator._get_aoti_compile_target()
    return load_compiled_model(
        str(compiled_member(model_file, device)), device, list(target["input"]), list(target["output"])
    )


def compiled_path(member_dir: Path, target: str) -> Path:
    return member_dir / f"compiled_{target}.nequip.pt2"


def compile_commands(ensemble: str | Path, target: str, device: str) -> List[List[str]]:
    """The ``nequip-compile`` command line of every finished member."""
    import json

    if target not in TARGETS:
        raise ValueError(f"target '{target}' is not one of {', '.join(TARGETS)}")
    mpath = manifest_path(ensemble)
    cmds = []
    for m in json.loads(mpath.read_text())["members"]:
        d = mpath.parent / m["dir"]
        cmds.append(
            [
                sys.executable,
                "-m",
                "deepeut.training.nequip_entry",
                "nequip.scripts.compile",
                str(d / m["checkpoint"]),
                str(compiled_path(d, target)),
                "--mode",
                "aotinductor",
                "--device",
                device,
                "--target",
                target,
            ]
        )
    return cmds


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ensemble", help="a stage=train output folder (with ensemble.json)")
    p.add_argument("--target", default="pair_allegro", choices=TARGETS)
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    for cmd in compile_commands(args.ensemble, args.target, args.device):
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
