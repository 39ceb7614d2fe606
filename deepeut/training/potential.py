"""A trained ensemble as a potential: batched predictions of every member, and an ASE calculator.

:class:`Ensemble` loads the members of a ``stage=train`` folder (their ``model.nequip.zip`` packages, or
``best.ckpt`` when not packaged) with nequip's own loader and evaluates many frames per model call (frames are
batched into one graph). Energies in eV, forces in eV/Å. The ensemble force uncertainty is Eq. 6 of the paper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from deepeut.training.members import MANIFEST
from deepeut.errors import StageError


class EnsembleError(StageError):
    """No usable ensemble at the given path."""


@dataclass
class Predictions:
    """Per-member predictions for a list of frames."""

    energies: np.ndarray  # (n_members, n_frames), eV
    forces: List[np.ndarray]  # per frame: (n_members, n_atoms, 3), eV/Å

    @property
    def mean_forces(self) -> List[np.ndarray]:
        return [f.mean(axis=0) for f in self.forces]

    @property
    def mean_energies(self) -> np.ndarray:
        return self.energies.mean(axis=0)

    def uncertainty(self) -> List[np.ndarray]:
        """Eq. 6 per atom: sqrt of the component-averaged variance over members (eV/Å); one array per frame."""
        return [force_uncertainty(f) for f in self.forces]


def force_uncertainty(member_forces):
    """Eq. 6: u_i = sqrt( 1/(3 N_c) Σ_models Σ_α (F̂_iα − F̄_iα)² ) for member forces (N_c, n_atoms, 3) in eV/Å, a
    numpy array or a torch tensor (then on its device)."""
    dev = member_forces - member_forces.mean(axis=0)[None]
    return ((dev**2).sum(axis=(0, 2)) / (3 * member_forces.shape[0])) ** 0.5


def manifest_path(path: str | Path) -> Path:
    """``ensemble.json`` for a training folder or the file itself."""
    p = Path(path)
    p = p / MANIFEST if p.is_dir() else p
    if not p.exists():
        raise EnsembleError(f"{path}: no trained ensemble here ({MANIFEST} missing); run stage=train first")
    return p


def resolve_ensemble(ensemble: Optional[str], out: Path, system=None) -> Path:
    """The config's ``ensemble`` folder (``embedded``: the shipped default of ``system``), else the ``train/``
    folder beside the stage folder ``out``. ``system`` (a name or a ``SystemConfig``): with a config, the
    ensemble must have been trained for that system and know all its elements (:func:`check_ensemble_system`)."""
    from deepeut.config.schema import ConfigError

    name = getattr(system, "name", system)
    if ensemble == "embedded" and name:
        from deepeut.training.embedded import embedded_ensemble

        path = embedded_ensemble(name)
    else:
        path = Path(ensemble) if ensemble else Path(out).parent / "train"
        if not (path / MANIFEST).exists() and not (path.suffix == ".json" and path.exists()):
            raise ConfigError(
                f"ensemble: no trained ensemble at {path} ({MANIFEST} missing); "
                "pass committee=<a stage=train output folder>"
            )
    if hasattr(system, "species"):
        check_ensemble_system(path, system)
    return path


def check_ensemble_system(path: str | Path, system) -> None:
    """Raise :class:`EnsembleError` when the ensemble at ``path`` was trained for another system than ``system``
    (its manifest's ``system``) or has no atom type for one of the system's elements."""
    from deepeut.systems.species import system_elements

    mpath = manifest_path(path)
    m = json.loads(mpath.read_text())
    if m.get("system") and m["system"] != system.name:
        raise EnsembleError(
            f"{mpath}: this ensemble was trained for system={m['system']}, not system={system.name}; "
            f"pass committee= a {system.name} committee (or committee=embedded)"
        )
    missing = sorted(set(system_elements(system.species)) - set(m.get("type_names") or []))
    if m.get("type_names") and missing:
        raise EnsembleError(
            f"{mpath}: the model has no atom type for {', '.join(missing)} of system={system.name} "
            f"(its types: {' '.join(m['type_names'])})"
        )


def ensemble_digest(path: str | Path) -> str:
    """Content hash (16 hex digits) of what the ensemble computes: its member folders, atom types and cutoff, and
    every member's model (a package entry by entry, its training config's machine paths cut as packing cuts them).
    Changed weights change it, so cached MD is never reused for other weights; a committee hashes alike in its
    training folder and packed into ``deepeut/models``, so its validation runs are found again after packing."""
    import hashlib
    import zipfile

    from deepeut.training.embedded import package_entries

    manifest = json.loads(manifest_path(path).read_text())
    computes = {k: manifest.get(k) for k in ("type_names", "r_max_A")}
    computes["members"] = [m["dir"] for m in manifest["members"]]
    h = hashlib.sha256(json.dumps(computes, sort_keys=True).encode())
    for f in member_model_files(path):
        if zipfile.is_zipfile(f):
            for info, data in package_entries(f):
                h.update(info.filename.encode())
                h.update(data)
        else:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def check_member(index: Optional[int], n_members: int) -> None:
    """``md.ensemble_member`` must name a member (or be null: the committee mean)."""
    from deepeut.config.schema import ConfigError

    if index is not None and not 0 <= index < n_members:
        raise ConfigError(
            f"md.ensemble_member: {index} is not a member of the ensemble (it has {n_members}: "
            f"0–{n_members - 1}, or null for the committee mean)"
        )


def member_model_files(path: str | Path) -> List[Path]:
    """The saved model of each finished member (package when present, else best.ckpt)."""
    mpath = manifest_path(path)
    manifest = json.loads(mpath.read_text())
    files = []
    for m in manifest["members"]:
        d = mpath.parent / m["dir"]
        files.append(d / (m.get("package") or m["checkpoint"]))
    if not files:
        raise EnsembleError(f"{mpath}: the ensemble has no finished member yet")
    return files


class Ensemble:
    """Members of a trained ensemble, evaluated together on batched graphs.

    Args:
        models: nequip ``GraphModel``s in eval mode
        type_names: model atom types (chemical symbols)
        r_max: cutoff radius (Å)
        device: torch device string (``cpu``, ``cuda``, ``cuda:1``)
    """

    def __init__(
        self,
        models: Sequence,
        type_names: Sequence[str],
        r_max: float,
        device: str = "cpu",
        files: Optional[Sequence[Path]] = None,
        skin_A: float = 0.0,
        committee_eval: str = "loop",
        chunks: int = 1,
    ):
        from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper

        from deepeut.training.neighbors import SkinNeighborList

        self.models = [m.to(device) for m in models]
        self.type_names = list(type_names)
        self.r_max = float(r_max)
        self.device = device
        self.files = list(files or [])
        self.transforms: List[Callable] = [
            ChemicalSpeciesToAtomTypeMapper(
                model_type_names=self.type_names, chemical_species_to_atom_type_map={t: t for t in self.type_names}
            ),
            SkinNeighborList(self.r_max, skin_A),
        ]
        self.skin_A = skin_A
        #: ``loop``: one model call per member; ``vmap``: all members in one call (deepeut.training.stacked)
        self.committee_eval = committee_eval
        self._stacked = None
        #: > 1: every structure evaluated in this many slabs with halos (deepeut.training.chunked), for a model too
        #: large for one pass over the box; same energies and forces
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.models)

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "cpu",
        members: Optional[Sequence[int]] = None,
        skin_A: float = 0.0,
        committee_eval: str = "loop",
        chunks: int = 1,
        matmul_contractions: bool = True,
        compiled: bool = False,
    ) -> "Ensemble":
        """Load the finished members of the ensemble at ``path`` (folder or ensemble.json) onto ``device``;
        ``skin_A`` > 0: MD neighbour lists with a Verlet skin (deepeut.training.neighbors), 0: rebuilt every call;
        ``matmul_contractions``: Allegro's tensor products as batched matrix products (deepeut.training.contract;
        same results, faster), False keeps Allegro's own; ``compiled``: each member compiled ahead of time
        (deepeut.training.compile.compiled_member, cached)."""
        from nequip.nn import graph_model
        from nequip.utils.global_state import set_global_state

        set_global_state(allow_tf32=False)
        files = member_model_files(path)
        if members is not None:
            files = [files[k] for k in members]
        if compiled:
            from deepeut.training.compile import load_compiled_member

            loaded = [load_compiled_member(f, device) for f in files]
            models, meta = [m for m, _ in loaded], loaded[0][1]
            type_names, r_max = meta[graph_model.TYPE_NAMES_KEY], meta[graph_model.R_MAX_KEY]
        else:
            models = [cls._load_eager_member(f, matmul_contractions) for f in files]
            meta = models[0].metadata
            type_names, r_max = meta[graph_model.TYPE_NAMES_KEY].split(" "), float(meta[graph_model.R_MAX_KEY])
        return cls(models, type_names, r_max, device, files, skin_A, committee_eval, chunks)

    @staticmethod
    def _load_eager_member(f: Path, matmul_contractions: bool):
        """One packaged or checkpointed member in eval mode (one clear line for a file that is not a model)."""
        from nequip.model.saved_models.load_utils import load_saved_model

        from deepeut.training.contract import use_matmul_contractions

        try:
            model = load_saved_model(str(f), compile_mode="eager")
        except Exception as exc:  # a truncated zip, a foreign file, a checkpoint of another nequip version
            msg = (str(exc).strip().splitlines() or [""])[0]
            raise EnsembleError(
                f"{f}: cannot load this model ({type(exc).__name__}: {msg}); the file is "
                "corrupted or not a nequip model: retrain the member or pass another ensemble"
            ) from None
        model.eval()
        if matmul_contractions:
            use_matmul_contractions(model)
        return model

    def graphs(self, frames: Sequence) -> Dict:
        """One batched nequip graph of ``frames`` (ase.Atoms) with neighbour lists, on the device."""
        from nequip.data import AtomicDataDict, from_ase

        data = []
        for atoms in frames:
            d = from_ase(atoms)
            for t in self.transforms:
                d = t(d)
            data.append(d)
        return AtomicDataDict.to_(AtomicDataDict.batched_from_list(data), self.device)

    def predict(self, frames: Sequence, batch_size: Optional[int] = None, progress: bool = False) -> Predictions:
        """Energies and forces of every member for every frame, ``batch_size`` frames per model call (default:
        1 on CPU, where batching was slower here — 37 vs 110 ms per 88-atom frame — and 16 on GPUs)."""
        from tqdm.auto import tqdm

        if self.chunks > 1:
            return self.predict_chunked(frames, progress)
        batch_size = batch_size or (1 if str(self.device) == "cpu" else 16)
        energies = np.zeros((len(self.models), len(frames)))
        forces: List[np.ndarray] = []
        starts = range(0, len(frames), batch_size)
        for start in tqdm(starts, desc="ensemble predictions", unit="batch", disable=not progress):
            chunk = frames[start : start + batch_size]
            graph = self.graphs(chunk)
            counts = [len(a) for a in chunk]
            e, f = self.member_outputs(graph)
            energies[:, start : start + len(chunk)] = e.detach().cpu().numpy()
            chunk_forces = f.detach().cpu().numpy()
            forces.extend(np.split(chunk_forces, np.cumsum(counts)[:-1], axis=1))
        return Predictions(energies, forces)

    def predict_chunked(self, frames: Sequence, progress: bool = False) -> Predictions:
        """:meth:`predict` with every structure evaluated in ``chunks`` slabs (deepeut.training.chunked)."""
        from tqdm.auto import tqdm

        from deepeut.training.chunked import chunked_energy_forces

        energies = np.zeros((len(self.models), len(frames)))
        forces: List[np.ndarray] = []
        for k, atoms in enumerate(tqdm(frames, desc="ensemble predictions", unit="frame", disable=not progress)):
            per_member = [
                chunked_energy_forces(m, self.type_names, self.r_max, atoms, self.chunks) for m in self.models
            ]
            energies[:, k] = [e for e, _ in per_member]
            forces.append(np.stack([f for _, f in per_member]))
        return Predictions(energies, forces)

    def member_outputs(self, graph: Dict):
        """Every member's energies (M, n_frames) in eV and forces (M, n_atoms, 3) in eV/Å on one nequip graph, as
        torch tensors on the device: one call per member, or one vmapped call (``committee_eval="vmap"``)."""
        import torch
        from nequip.data import AtomicDataDict

        if self.committee_eval == "vmap" and len(self.models) > 1:
            if self._stacked is None:
                from deepeut.training.stacked import StackedMembers

                self._stacked = StackedMembers(self.models)
            out = self._stacked(graph)
            return out[AtomicDataDict.TOTAL_ENERGY_KEY], out[AtomicDataDict.FORCE_KEY]
        outs = [model(dict(graph)) for model in self.models]
        return (
            torch.stack([o[AtomicDataDict.TOTAL_ENERGY_KEY].reshape(-1) for o in outs]),
            torch.stack([o[AtomicDataDict.FORCE_KEY] for o in outs]),
        )

    def calculator(self, member: Optional[int] = None):
        """An ASE calculator: member ``member``, or the ensemble mean with per-atom uncertainty (Eq. 6)."""
        return EnsembleCalculator(self, member)


class EnsembleCalculator(Calculator):
    """ASE calculator over an :class:`Ensemble`.

    ``member=None``: energy and forces are the ensemble mean; ``results`` also holds ``forces_members``
    (N_c, n_atoms, 3) and ``force_uncertainty`` (n_atoms,) in eV/Å (Eq. 6). ``member=k``: that model alone.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, ensemble: Ensemble, member: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.ensemble = ensemble
        self.member = member
        self._single = (
            Ensemble(
                [ensemble.models[member]],
                ensemble.type_names,
                ensemble.r_max,
                ensemble.device,
                skin_A=ensemble.skin_A,
                chunks=ensemble.chunks,
            )
            if member is not None
            else None
        )

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pred = (self._single or self.ensemble).predict([self.atoms], batch_size=1)
        forces = pred.forces[0]
        energy = float(pred.energies[:, 0].mean())
        self.results = {"energy": energy, "free_energy": energy, "forces": forces.mean(axis=0)}
        if self._single is None:
            self.results["forces_members"] = forces
            self.results["force_uncertainty"] = force_uncertainty(forces)
