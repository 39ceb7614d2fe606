"""Train an ensemble of Allegro potentials, one ``nequip-train`` process per member, resumable.

Layout of a training output folder (``stage=train``)::

    ensemble.json            the manifest: members, dataset (origin, manifest hash, sizes), model, metrics
    data/{train,test}.extxyz the exact data the members saw (energy eV, forces eV/Å)
    member_<k>/nequip.yaml   the nequip-train config of member k (seed train.seed + k)
    member_<k>/best.ckpt     lowest validation loss;  last.ckpt: every epoch (a restarted run resumes from it)
    member_<k>/model.nequip.zip   nequip-package of best.ckpt (loads in nequip's ASE and TorchSim calculators)
    member_<k>/metrics/metrics.csv  per-epoch losses and metrics (logger=csv; every epoch, resumed runs
                             included); wandb/ for logger=wandb
    member_<k>/metrics/history.csv  while a resumed run trains: the rows of the runs before it
    member_<k>/nequip.log    everything nequip-train and nequip-package printed
    member_<k>/done.json     written last: the member is finished and is never retrained

A member with ``done.json`` is skipped; one with ``last.ckpt`` but no ``done.json`` continues from it.
A ``nequip-train`` child receives SIGTERM when the process that started it dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import csv
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

from deepeut.config.schema import Config
from deepeut.data.source import DatasetFiles
from deepeut.utils.io import write_json_atomic, write_text_atomic
from deepeut.errors import StageError

log = logging.getLogger(__name__)

MANIFEST = "ensemble.json"
SCHEMA = "deepeut.ensemble/1"


class TrainingError(StageError):
    """A member's nequip-train or nequip-package process failed; the message points at its log."""


def member_dir(root: Path, k: int) -> Path:
    return Path(root) / f"member_{k}"


def _python_module(module: str, *args: str) -> List[str]:
    return [sys.executable, "-m", module, *args]


def check_resumable(ckpt: Path, k: int) -> None:
    """A ``last.ckpt`` that torch cannot read (a run killed while writing it, a damaged disk) stops with a clear
    message instead of a nequip traceback."""
    import torch

    try:
        torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as exc:
        msg = (str(exc).strip().splitlines() or [""])[0]
        raise TrainingError(
            f"{ckpt} is corrupted ({type(exc).__name__}: {msg}); delete it to train member {k} from scratch"
        ) from None


def nequip_train_command(mdir: Path, resume: bool) -> List[str]:
    """``nequip-train`` on ``<mdir>/nequip.yaml`` with Hydra's run dir = ``mdir``; resume from last.ckpt."""
    cmd = _python_module(
        "deepeut.training.nequip_entry",
        "nequip.scripts.train",
        "-cp",
        str(mdir.resolve()),
        "-cn",
        "nequip",
        f"hydra.run.dir={mdir.resolve()}",
    )
    if resume:
        cmd.append(f"++ckpt_path={(mdir / 'last.ckpt').resolve()}")
    return cmd


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies (no orphaned training)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (AttributeError, OSError):  # not Linux: the parent's own cleanup below still applies
        pass


def _run(cmd: List[str], what: str, logfile: Path, env: Optional[Dict[str, str]] = None) -> None:
    """Run ``cmd``; its output (Lightning's progress bar with ETA included) is shown live and kept in ``logfile``.
    The child is terminated when this process dies or is interrupted."""
    with open(logfile, "ab") as flog:
        flog.write(f"\n$ {' '.join(cmd)}\n".encode())
        flog.flush()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
        )
        try:
            assert proc.stdout is not None
            while chunk := os.read(proc.stdout.fileno(), 65536):
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
                flog.write(chunk)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
    if rc != 0:
        raise TrainingError(f"{what} exited with code {rc}; see {logfile}")


def read_metrics_csv(path: Path) -> List[Dict[str, float]]:
    """Rows of a Lightning CSVLogger ``metrics.csv`` (empty cells dropped; values as floats)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def write_metrics_csv(path: Path, rows: List[Dict[str, float]]) -> None:
    """Write ``rows`` as one CSV (the union of their columns, first-seen order), atomically."""
    from deepeut.utils.io import atomic_path

    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _unique_rows(rows: List[Dict[str, float]]) -> List[Dict[str, float]]:
    return list({tuple(sorted(r.items())): r for r in rows}.values())


def keep_metrics_history(mdir: Path) -> None:
    """Before a resume: move the rows of ``metrics/metrics.csv`` into ``metrics/history.csv`` (Lightning's
    CSVLogger starts a new file on resume and would drop them)."""
    current, history = mdir / "metrics" / "metrics.csv", mdir / "metrics" / "history.csv"
    rows = read_metrics_csv(history) + read_metrics_csv(current)
    if rows:
        write_metrics_csv(history, _unique_rows(rows))
    current.unlink(missing_ok=True)


def merge_metrics_history(mdir: Path) -> None:
    """After a run: ``metrics.csv`` = the kept history followed by the rows of this run."""
    current, history = mdir / "metrics" / "metrics.csv", mdir / "metrics" / "history.csv"
    if history.exists():
        write_metrics_csv(current, _unique_rows(read_metrics_csv(history) + read_metrics_csv(current)))
        history.unlink()


def test_metrics(rows: List[Dict[str, float]]) -> Dict[str, float]:
    """nequip's test metrics of the last test run (keys ``test0_epoch/<metric>``; eV, eV/atom, eV/Å)."""
    out: Dict[str, float] = {}
    for row in rows:
        for k, v in row.items():
            if k.startswith("test0_epoch/"):
                out[k.split("/", 1)[1]] = v
    return out


def train_member(
    k: int,
    cfg: Config,
    data: DatasetFiles,
    root: Path,
    type_names: List[str],
    group: str,
    tracked: Dict,
    init_from: Optional[Path] = None,
) -> Dict:
    """Train (or resume, or skip when finished) ensemble member ``k``, from scratch or from member ``k`` of the
    ensemble ``init_from``; returns its done.json record."""
    from omegaconf import OmegaConf

    from deepeut.training.nequip_config import member_config

    mdir = member_dir(root, k)
    done = mdir / "done.json"
    if done.exists():
        log.info("member %d already finished (%s); not retrained", k, done)
        import json

        return json.loads(done.read_text())
    mdir.mkdir(parents=True, exist_ok=True)
    nequip_cfg = member_config(
        model=cfg.model,
        train=cfg.train,
        logger=cfg.logger,
        member=k,
        train_file=data.train,
        test_file=data.test,
        member_dir=mdir,
        type_names=type_names,
        device=cfg.device,
        n_train_frames=data.n_train,
        group=group,
        tracked=tracked,
        init_from=init_from,
    )
    write_text_atomic(mdir / "nequip.yaml", OmegaConf.to_yaml(OmegaConf.create(nequip_cfg)))
    resume = (mdir / "last.ckpt").exists()
    if resume:
        check_resumable(mdir / "last.ckpt", k)
        keep_metrics_history(mdir)
    log.info(
        "member %d: %s training (seed %d) in %s", k, "resuming" if resume else "starting", cfg.train.seed + k, mdir
    )
    env = dict(os.environ, WANDB_MODE=cfg.logger.mode, HYDRA_FULL_ERROR="1")
    t0 = time.time()
    _run(nequip_train_command(mdir, resume), f"nequip-train of member {k}", mdir / "nequip.log", env)
    merge_metrics_history(mdir)
    if not (mdir / "best.ckpt").exists():
        raise TrainingError(f"member {k}: nequip-train finished without best.ckpt in {mdir}")
    record = {
        "member": k,
        "seed": cfg.train.seed + k,
        "dir": mdir.name,
        "checkpoint": "best.ckpt",
        "resumed": resume,
        "train_wall_s": round(time.time() - t0, 1),
        "test_metrics": test_metrics(read_metrics_csv(mdir / "metrics" / "metrics.csv")),
        "units": {"energy": "eV", "per_atom_energy": "eV/atom", "forces": "eV/Å"},
    }
    if cfg.train.package:
        _run(
            _python_module("nequip.scripts.package", "build", str(mdir / "best.ckpt"), str(mdir / "model.nequip.zip")),
            f"nequip-package of member {k}",
            mdir / "nequip.log",
        )
        record["package"] = "model.nequip.zip"
    write_json_atomic(done, record)
    return record


def finished_members(root: Path) -> List[Dict]:
    """done.json records of all finished members under ``root``, by member index."""
    import json

    return sorted((json.loads(p.read_text()) for p in Path(root).glob("member_*/done.json")), key=lambda r: r["member"])


def write_manifest(
    root: Path, cfg: Config, data: DatasetFiles, type_names: List[str], init_from: Optional[Path] = None
) -> Dict:
    """(Re)write ``ensemble.json`` from the finished members on disk (safe when members finish in parallel);
    ``train.init_from`` records the ensemble the members were warm-started from."""
    members = finished_members(root)
    manifest = {
        "schema": SCHEMA,
        "system": cfg.system.name,
        "ensemble_size": cfg.train.ensemble_size,
        "complete": len(members) == cfg.train.ensemble_size,
        "members": members,
        "dataset": data.to_json(),
        "type_names": type_names,
        "r_max_A": cfg.model.r_max,
        "model": asdict(cfg.model),
        "train": {**asdict(cfg.train), "init_from": str(init_from) if init_from is not None else None},
        "units": {"energy": "eV", "forces": "eV/Å", "length": "Å"},
    }
    write_json_atomic(Path(root) / MANIFEST, manifest)
    return manifest


def objective(members: List[Dict]) -> float:
    """Sweep objective: mean test force RMSE of the members (eV/Å); lower is better."""
    vals = [m["test_metrics"].get("forces_rmse", float("nan")) for m in members]
    return float(sum(vals) / len(vals)) if vals else float("nan")
