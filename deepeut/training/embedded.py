"""The default ensembles shipped in ``deepeut/models/<system>/``: what ``stage=main`` runs when no ensemble of
the system exists in earlier outputs.

Each is a 3-member ``allegro_small`` ensemble trained by this project's own ``stage=train`` (``train=embedded``)
on the shipped GFN2-xTB demo dataset of the system (``deepeut/data/demo/<system>``). Only the packaged models
(``member_<k>/model.nequip.zip``) and the manifest travel; regenerate all three with
``scripts/make_default_ensembles.sh`` (about an hour per system on one CPU core)::

    python run.py stage=train system=nma train=embedded output_dir=outputs/embedded/nma
    python -m deepeut.training.embedded pack outputs/embedded/nma deepeut/models/nma
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from deepeut.training.members import MANIFEST
from deepeut.utils.io import atomic_path, write_json_atomic

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
REGENERATE = "scripts/make_default_ensembles.sh"


def embedded_ensemble(system: str) -> Path:
    """Folder of the shipped default ensemble of ``system``."""
    from deepeut.training.potential import EnsembleError

    path = MODELS_DIR / system
    if not (path / MANIFEST).exists():
        raise EnsembleError(
            f"no embedded default ensemble for system '{system}' in {MODELS_DIR}; train one with "
            f"{REGENERATE} (SYSTEMS={system}) or pass ensemble=<a stage=train folder>"
        )
    return path


def pack(src: Path, dest: Path) -> Path:
    """Copy the members' packaged models and a manifest pointing at them from a finished stage=train folder."""
    manifest = json.loads((Path(src) / MANIFEST).read_text())
    if not manifest.get("complete"):
        raise SystemExit(f"{src}: the ensemble is not complete; finish training first")
    dest.mkdir(parents=True, exist_ok=True)
    for m in manifest["members"]:
        mdir = dest / m["dir"]
        mdir.mkdir(exist_ok=True)
        with atomic_path(mdir / m["package"]) as tmp:
            shutil.copyfile(Path(src) / m["dir"] / m["package"], tmp)
        m.pop("checkpoint", None)
    manifest["dataset"] = {k: v for k, v in manifest["dataset"].items() if k not in ("train", "test", "calibration")}
    manifest["embedded"] = {"regenerate": REGENERATE, "trained_in": Path(src).name}  # no machine paths shipped
    write_json_atomic(dest / MANIFEST, manifest)
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description="pack a finished stage=train folder as an embedded default ensemble")
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack")
    pk.add_argument("src", type=Path)
    pk.add_argument("dest", type=Path)
    args = p.parse_args()
    print(pack(args.src, args.dest))


if __name__ == "__main__":
    main()
