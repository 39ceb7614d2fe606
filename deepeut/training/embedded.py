"""The default ensembles shipped in ``deepeut/models/<system>/``: what ``stage=main`` runs when no ensemble of
the system exists in earlier outputs.

Each is a 3-member ``allegro_small`` ensemble trained by this project's own ``stage=train``: the potentials
campaign's committee (``scripts/make_default_ensembles.sh`` runs ``scripts/campaign.sh`` with ``PACK=1`` for each
system, on the shipped campaign data ``deepeut/data/campaign/<system>``; manifest ``dataset.origin``
``campaign:<system>``), with the validation records of that committee beside it. Any finished ``stage=train``
folder can be packed the same way, e.g. ``train=embedded`` on the shipped GFN2-xTB demo dataset. Only the packaged
models (``member_<k>/model.nequip.zip``), the manifest and the validation records travel::

    SYSTEMS=nma bash scripts/make_default_ensembles.sh
    python -m deepeut.training.embedded pack outputs/campaign/ura/al/iter_3/train deepeut/models/ura \
        --origin campaign:ura
    python run.py stage=train system=nma train=embedded output_dir=outputs/embedded/nma
    python -m deepeut.training.embedded pack outputs/embedded/nma deepeut/models/nma
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

from deepeut.training.members import MANIFEST
from deepeut.utils.io import atomic_path, write_json_atomic

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
REPO_ROOT = MODELS_DIR.parents[1]
#: an absolute path in a YAML text: after a blank, quote, '=' or ':' (``store:/a/b``), up to a blank or quote
ABSOLUTE_PATH = re.compile(r"(?<=[\s'\"=:])/[^\s'\"]+")
REGENERATE = "scripts/make_default_ensembles.sh"


def regenerate_command(system: str, kind: str) -> str:
    """The command that makes an embedded ensemble of ``system`` again: its campaign for ``kind`` ``campaign``,
    else ``train=embedded`` on the shipped demo dataset and its pack."""
    if kind == "campaign":
        return f"SYSTEM={system} PACK=1 bash scripts/campaign.sh"
    out = f"outputs/embedded/{system}"
    return (
        f"python run.py stage=train system={system} train=embedded output_dir={out} && "
        f"python -m deepeut.training.embedded pack {out} deepeut/models/{system} --origin demo:{system}"
    )


def embedded_ensemble(system: str) -> Path:
    """Folder of the shipped default ensemble of ``system``."""
    from deepeut.training.potential import EnsembleError

    path = MODELS_DIR / system
    if not (path / MANIFEST).exists():
        raise EnsembleError(
            f"no embedded default ensemble for system '{system}' in {MODELS_DIR}; train one with "
            f"{REGENERATE} (SYSTEMS={system}) or pass committee=<a stage=train folder>"
        )
    return path


def without_machine_path(text: str) -> str:
    """A path (optionally after a ``kind:`` prefix) cut to its last two components: ``store:/a/b/c`` → ``store:b/c``."""
    prefix, _, path = text.rpartition(":") if ":" in text else ("", "", text)
    short = "/".join(Path(path).parts[-2:])
    return f"{prefix}:{short}" if prefix else short


def relative_or_short(path: str, root: Path = REPO_ROOT) -> str:
    """``path`` relative to ``root`` when inside it, else :func:`without_machine_path`."""
    p = Path(path)
    return str(p.relative_to(root)) if p.is_relative_to(root) else without_machine_path(path)


def package_entries(src: Path, root: Path = REPO_ROOT) -> Iterator[Tuple[zipfile.ZipInfo, bytes]]:
    """The entries of the nequip package ``src`` (``*.nequip.zip``) in stored order, with every absolute path in its
    training config (``model/config.yaml``: data files, save dirs, the warm-start package) made relative to ``root``
    or cut to its last two components; weights and code byte for byte."""
    with zipfile.ZipFile(src) as zin:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("model/config.yaml"):
                data = ABSOLUTE_PATH.sub(lambda m: relative_or_short(m.group(0), root), data.decode()).encode()
            yield info, data


def copy_package_without_machine_paths(src: Path, dest: Path, root: Path = REPO_ROOT) -> None:
    """Copy the nequip package ``src`` to ``dest`` as :func:`package_entries` gives it."""
    with zipfile.ZipFile(dest, "w") as zout:
        for info, data in package_entries(src, root):
            zout.writestr(info, data, compress_type=info.compress_type)


def pack(src: Path, dest: Path, note: Optional[Dict] = None, origin: Optional[str] = None) -> Path:
    """Copy the members' packaged models and a manifest pointing at them from a finished stage=train folder;
    ``note`` replaces the manifest's ``embedded`` entry (how to regenerate it); ``origin`` (``<kind>:<system>``, e.g.
    ``campaign:ura``) names the shipped dataset the members were trained on, so that ``stage=evaluate`` finds its
    test split on any machine (default: the origin the training recorded)."""
    from deepeut.data.demo import SHIPPED_DIRS, DemoDataMissing, demo_files

    manifest = json.loads((Path(src) / MANIFEST).read_text())
    if origin is not None:
        kind, _, system = origin.partition(":")
        if system != manifest.get("system"):
            raise SystemExit(f"--origin {origin}: the ensemble is of system '{manifest.get('system')}'")
        if kind not in SHIPPED_DIRS:
            raise SystemExit(f"--origin {origin}: the kind must be one of {', '.join(SHIPPED_DIRS)}")
        try:
            demo_files(system, kind)
        except DemoDataMissing as exc:
            raise SystemExit(f"--origin {origin}: {exc}") from None
    if not manifest.get("complete"):
        raise SystemExit(f"{src}: the ensemble is not complete; finish training first")
    unpackaged = [m["dir"] for m in manifest["members"] if not m.get("package")]
    if unpackaged:
        raise SystemExit(f"{src}: {', '.join(unpackaged)} not packaged (train.package=false); only packages travel")
    dest.mkdir(parents=True, exist_ok=True)
    for m in manifest["members"]:
        mdir = dest / m["dir"]
        mdir.mkdir(exist_ok=True)
        with atomic_path(mdir / m["package"]) as tmp:
            copy_package_without_machine_paths(Path(src) / m["dir"] / m["package"], tmp)
        m.pop("checkpoint", None)
    manifest["dataset"] = {k: v for k, v in manifest["dataset"].items() if k not in ("train", "test", "calibration")}
    if origin is not None:
        manifest["dataset"]["trained_on"] = without_machine_path(manifest["dataset"].get("origin", ""))
        manifest["dataset"]["origin"] = origin
    for section, key in (("dataset", "origin"), ("train", "init_from")):
        if manifest.get(section, {}).get(key):
            manifest[section][key] = without_machine_path(manifest[section][key])
    for stale in dest.glob("validation_*.json"):  # records of the ensemble this one replaces
        stale.unlink()
    for record in Path(src).glob("validation_*.json"):
        shutil.copyfile(record, dest / record.name)
    if note is None:  # how to make it again, without machine paths
        kind = (origin or manifest["dataset"].get("origin", "")).partition(":")[0]
        again = regenerate_command(manifest.get("system"), kind)
        note = {"regenerate": again, "trained_in": "/".join(Path(src).parts[-3:])}
    manifest["embedded"] = note
    write_json_atomic(dest / MANIFEST, manifest)
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description="pack a finished stage=train folder as an embedded default ensemble")
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack")
    pk.add_argument("src", type=Path)
    pk.add_argument("dest", type=Path)
    pk.add_argument("--origin", help="the shipped dataset it was trained on, <kind>:<system> (e.g. campaign:ura)")
    args = p.parse_args()
    print(pack(args.src, args.dest, origin=args.origin))


if __name__ == "__main__":
    main()
