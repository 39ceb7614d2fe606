"""Shared fixtures: composed configs and built boxes (built once per session; packmol is seeded)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def load_config(*overrides: str):
    from deepeut.config import compose, validate

    return validate(compose(list(overrides)))


@pytest.fixture(scope="session")
def config():
    return load_config


_BOXES = {}


def built_box(system: str, scale: str = "tiny"):
    """A checked box of ``system`` at ``scale`` (cached for the session)."""
    from deepeut.systems import build_box

    key = (system, scale)
    if key not in _BOXES:
        cfg = load_config(f"system={system}", f"scale={scale}")
        _BOXES[key] = (cfg, build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build))
    return _BOXES[key]


def ura_member_forces_agree(member: int, **variants) -> float:
    """Energy and forces of embedded URA member ``member`` on the packed tiny URA box, loaded with
    ``Ensemble.load(**{key: True})`` and ``(**{key: False})`` for the one keyword in ``variants``, agree to float32
    rounding (1 meV, 2e-4 eV/Å); returns the largest force component (eV/Å)."""
    import numpy as np

    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.potential import Ensemble

    ((key, _),) = variants.items()
    atoms = built_box("ura")[1].atoms
    results = []
    for value in (True, False):
        a = atoms.copy()
        a.calc = Ensemble.load(MODELS_DIR / "ura", members=[member], **{key: value}).calculator(member=0)
        results.append((a.get_potential_energy(), a.get_forces()))
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-3)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=2e-4)
    return float(np.abs(results[0][1]).max())


def _cli(args) -> list:
    return [sys.executable, str(ROOT / "run.py"), *args]


def _cli_env() -> dict:
    return dict(os.environ, HYDRA_FULL_ERROR="0", WANDB_MODE="offline")


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in a subprocess (what a user types)."""
    return subprocess.run(_cli(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_cli_env())


def start_cli(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """``python run.py ARGS`` in its own process group (so that a test can SIGKILL it with its children)."""
    return subprocess.Popen(
        _cli(args),
        cwd=cwd,
        env=_cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300, settle: float = 0.0) -> bool:
    """SIGKILL ``proc``'s process group as soon as ``ready()`` is true (after ``settle`` s); False when the
    process ended (or the time ran out) first."""
    import signal
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            time.sleep(settle)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return False


@pytest.fixture(scope="session")
def ensemble_dir(tmp_path_factory) -> Path:
    """A 3-member allegro_small ensemble trained for 2 epochs on the URA demo data (~1 min, once per session)."""
    out = tmp_path_factory.mktemp("ensemble")
    res = run_cli("stage=train", "train.max_epochs=2", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def rewrite_zip_entry(archive: Path, suffix: str, change) -> None:
    """Rewrite the entry of the zip ``archive`` (a nequip package or a checkpoint) whose name ends with ``suffix``
    by ``change`` (bytes → bytes); an empty ``suffix`` rewrites the largest entry."""
    import zipfile

    with zipfile.ZipFile(archive) as zin:
        entries = [(info, zin.read(info)) for info in zin.infolist()]
    target = max(entries, key=lambda e: len(e[1]))[0].filename if not suffix else None
    with zipfile.ZipFile(archive, "w") as zout:
        for info, data in entries:
            hit = info.filename == target if target else info.filename.endswith(suffix)
            zout.writestr(info, change(data) if hit else data)


def change_weights(model_file: Path) -> None:
    """Flip one bit of the largest tensor of a saved model: other weights, same layout."""
    rewrite_zip_entry(model_file, "", lambda b: bytes([b[0] ^ 1]) + b[1:])
