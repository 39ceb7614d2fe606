"""One streaming pass over a trajectory → a compact per-molecule cache (HDF5) that every dynamical analysis reads.

The pass reads ``block`` frames at a time (memory ≈ block × n_atoms × 48 bytes for positions and velocities in
float64, 256 × 8192 atoms ≈ 100 MB), makes each molecule whole (minimum image to its first atom), and writes::

    com_position   (T, M, 3) Å, unwrapped in time (minimum-image steps between frames), float64
    com_velocity   (T, M, 3) Å/ps, float32 (mass-weighted atom velocities)
    co_vector      (T, n_amide, 3) C→O unit vectors of the amide carbonyls, float32
    torsion_CSSC   (T, n_TFSI) TFSI C–S–S–C torsion (degrees), float32
    contacts       Li–amide contacts (Li–O(amide) ≤ contact_cutoff_A): ``contact_offsets`` (T+1,) into
                   ``contact_ids`` (pair id = li * n_amide + amide)
    time_ps (T,), molecule species/charges/masses, cell (3, 3) Å

and, in the same pass, feeds the atom-pair RDF accumulators (every ``rdf_stride`` frames). Molecule ids and
Fig. 1 labels come from molecule recognition on the first frame (deepeut.analysis.task.sites_for), checked
against the trajectory's own molecule ids when it has them. A trajectory without velocities gets NaN
``com_velocity`` and ``has_velocities = False`` in the file's attributes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from deepeut.analysis.base import Frame, FrameAnalysis
from deepeut.utils.geometry import minimum_image

log = logging.getLogger(__name__)

# Fig. 1 label conventions the analysis reads (a new solvent follows them, see README "Adding another salt or
# solvent"): solvent O, N and carbonyl C are ``O_X``, ``N_X``, ``C_X`` (other carbons carry a suffix such as
# ``C_X(M)``); H-bond-donor hydrogens are ``H_X``, ``H_X(C)`` or ``H_X(T)``, other hydrogens another suffix (``(M)``).
AMINE_H_SUFFIXES = ("", "(C)", "(T)")


def is_solvent_oxygen(label: str) -> bool:
    return label.startswith("O_") and label != "O_TFSI"


def is_solvent_nitrogen(label: str) -> bool:
    return label.startswith("N_") and label != "N_TFSI"


def is_carbonyl_carbon(label: str) -> bool:
    return label.startswith("C_") and "(" not in label and label != "C_TFSI"


def is_amine_hydrogen(label: str) -> bool:
    if not label.startswith("H_"):
        return False
    return (label[label.index("(") :] if "(" in label else "") in AMINE_H_SUFFIXES


@dataclass
class Sites:
    """Index sets of one system, from per-atom molecule ids, species names and Fig. 1 labels."""

    molecule: np.ndarray  # (n,) molecule index 0..M-1
    species_of_molecule: np.ndarray  # (M,) species name
    labels: np.ndarray  # (n,)
    masses: np.ndarray  # (n,) amu
    charges: Dict[str, int]  # species → charge (e)

    @property
    def n_molecules(self) -> int:
        return int(self.molecule.max()) + 1

    def molecules_of(self, role: str) -> np.ndarray:
        return np.nonzero(self.species_of_molecule == role)[0]

    def atoms_labelled(self, predicate) -> np.ndarray:
        return np.nonzero([predicate(str(lab)) for lab in self.labels])[0]

    @property
    def li(self) -> np.ndarray:
        return self.atoms_labelled(lambda s: s == "Li")

    @property
    def o_tfsi(self) -> np.ndarray:
        return self.atoms_labelled(lambda s: s == "O_TFSI")

    @property
    def o_amide(self) -> np.ndarray:
        return self.atoms_labelled(is_solvent_oxygen)

    @property
    def c_amide(self) -> np.ndarray:
        """Carbonyl carbons (label C_U, C_Ac, C_MAc — no methyl suffix)."""
        return self.atoms_labelled(is_carbonyl_carbon)

    @property
    def h_amine(self) -> np.ndarray:
        return self.atoms_labelled(is_amine_hydrogen)

    def amide_molecules(self) -> np.ndarray:
        return np.unique(self.molecule[self.o_amide])


def sdf_references(sites: Sites) -> Dict[str, tuple]:
    """Reference molecules for SDFs: name → (atom triples (origin, x, plane), atoms of each molecule, molecules).

    Amide: carbonyl C, O, N; TFSI: N, first S, second S (atom order within the molecule)."""
    refs = {}
    is_ = lambda name: lambda s: s == name  # noqa: E731
    for name, (lab_a, lab_b, lab_c) in (
        ("amide", (is_carbonyl_carbon, is_solvent_oxygen, is_solvent_nitrogen)),
        ("TFSI", (is_("N_TFSI"), is_("S"), is_("S"))),
    ):
        mols = sites.molecules_of(name)
        triples, atoms = [], []
        for m in mols:
            at = np.nonzero(sites.molecule == m)[0]
            lab = [str(x) for x in sites.labels[at]]
            a, b, c = (at[[f(x) for x in lab]] for f in (lab_a, lab_b, lab_c))
            c = c[c != b[0]] if len(b) else c
            if len(a) and len(b) and len(c):
                triples.append((a[0], b[0], c[0]))
                atoms.append(at)
        if triples and len({len(x) for x in atoms}) == 1:
            refs[name] = (np.array(triples), np.array(atoms), mols[: len(triples)])
    return refs


def sites_from(
    molecule: np.ndarray, labels: np.ndarray, masses: np.ndarray, species_per_atom: np.ndarray, charges: Dict[str, int]
) -> Sites:
    first = np.unique(molecule, return_index=True)[1]
    return Sites(
        np.asarray(molecule), np.asarray(species_per_atom)[first], np.asarray(labels), np.asarray(masses), charges
    )


def membership_matrix(molecule: np.ndarray, weights: np.ndarray):
    """Sparse (M × n) matrix with row m holding weights/Σweights of molecule m's atoms."""
    from scipy.sparse import csr_matrix

    n = len(molecule)
    tot = np.bincount(molecule, weights=weights)
    return csr_matrix((weights / tot[molecule], (molecule, np.arange(n))), shape=(int(molecule.max()) + 1, n))


def _apply(w, x: np.ndarray) -> np.ndarray:
    """(M × n) sparse @ (B, n, 3) → (B, M, 3)."""
    b, n, _ = x.shape
    return (w @ x.transpose(1, 0, 2).reshape(n, b * 3)).reshape(-1, b, 3).transpose(1, 0, 2)


def molecule_com(pos: np.ndarray, sites: Sites, w, cell: np.ndarray) -> np.ndarray:
    """Centres of mass (B, M, 3) Å of whole molecules (atoms imaged next to their molecule's first atom)."""
    first = np.unique(sites.molecule, return_index=True)[1]
    ref = pos[:, first[sites.molecule]]
    d = minimum_image(pos - ref, cell)
    return pos[:, first] + _apply(w, d)


def tfsi_cssc(pos: np.ndarray, sites: Sites, cell: np.ndarray) -> np.ndarray:
    """C–S–S–C torsion (degrees) of every TFSI, (B, n_TFSI)."""
    from deepeut.utils.geometry import dihedral_deg

    quartets = []
    for m in sites.molecules_of("TFSI"):
        atoms = np.nonzero(sites.molecule == m)[0]
        lab = sites.labels[atoms]
        c, s = atoms[lab == "C_TFSI"], atoms[lab == "S"]
        if len(c) == 2 and len(s) == 2:
            # C bonded to S: the closer one in the first frame
            d = np.linalg.norm(minimum_image(pos[0, c][:, None] - pos[0, s][None], cell), axis=2)
            c0, c1 = (c[0], c[1]) if d[0, 0] < d[0, 1] else (c[1], c[0])
            quartets.append((c0, s[0], s[1], c1))
    if not quartets:
        return np.zeros((pos.shape[0], 0))
    q = np.array(quartets)
    return np.stack([dihedral_deg(frame[q], cell) for frame in pos])


def li_amide_contacts(pos: np.ndarray, sites: Sites, cell: np.ndarray, cutoff: float) -> List[np.ndarray]:
    """Per frame: pair ids li_index * n_amide + amide_index with some Li–O(amide) distance ≤ cutoff (Å)."""
    from deepeut.utils.geometry import neighbor_pairs

    li, o = sites.li, sites.o_amide
    amides = sites.amide_molecules()
    amide_index = np.searchsorted(amides, sites.molecule[o])
    out = []
    for frame in pos:
        i, j, _ = neighbor_pairs(np.concatenate([frame[li], frame[o]]), cell, cutoff)
        cross = (i < len(li)) != (j < len(li))
        a, b = np.where(i < len(li), i, j)[cross], (np.where(i < len(li), j, i) - len(li))[cross]
        out.append(np.unique(a * len(amides) + amide_index[b]))
    return out


def build_cache(
    traj,
    sites: Sites,
    path: Path,
    contact_cutoff_A: float = 3.0,
    start_frame: int = 0,
    stride: int = 1,
    block: int = 256,
    analyses: Sequence[FrameAnalysis] = (),
    rdf_stride: int = 10,
    progress: bool = True,
) -> Path:
    """Stream ``traj`` (deepeut.trajectory.readers reader) into the cache at ``path``; the per-frame ``analyses``
    (RDFs, SDFs: deepeut.analysis.base.FrameAnalysis) are fed every ``rdf_stride`` frames of the same pass."""
    import h5py
    from tqdm.auto import tqdm

    from deepeut.utils.io import atomic_path

    frames = np.arange(start_frame, traj.n_frames, stride)
    cell = traj.cell
    w_mass = membership_matrix(sites.molecule, sites.masses)
    amides, c_at, o_at = sites.amide_molecules(), sites.c_amide, sites.o_amide
    n_t, n_m = len(frames), sites.n_molecules
    prev_com = prev_raw = None
    offsets, ids = [0], []
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("time_ps", data=traj.times_ps[frames])
        f.create_dataset("cell", data=cell)
        f.create_dataset("species", data=np.array(sites.species_of_molecule, dtype=h5py.string_dtype()))
        f.create_dataset("charge", data=np.array([sites.charges.get(s, 0) for s in sites.species_of_molecule]))
        f.create_dataset("molecule_mass", data=np.bincount(sites.molecule, weights=sites.masses))
        f.create_dataset("amide_molecules", data=amides)
        chunks = (min(n_t, 1024), min(n_m, 64), 3)
        com = f.create_dataset("com_position", (n_t, n_m, 3), "f8", chunks=chunks)
        has_vel = getattr(traj, "has_velocities", True)
        f.attrs["has_velocities"] = has_vel  # a dump without vx vy vz: velocity analyses are skipped
        vel = f.create_dataset("com_velocity", (n_t, n_m, 3), "f4", chunks=chunks, fillvalue=np.nan)
        cov = f.create_dataset(
            "co_vector", (n_t, len(amides), 3), "f4", chunks=(min(n_t, 1024), max(1, min(len(amides), 64)), 3)
        )
        tor = None
        bar = tqdm(total=n_t, desc="analysis pass", unit="frame", disable=not progress)
        for s in range(0, n_t, block):
            idx = frames[s : s + block]
            sl = slice(int(idx[0]), int(idx[-1]) + 1, stride)
            pos = traj.positions(sl)
            c = molecule_com(pos, sites, w_mass, cell)
            # unwrap in time: accumulate minimum-image displacements of the (whole-molecule) CoMs
            steps = minimum_image(
                np.diff(np.concatenate([c[:1] if prev_raw is None else prev_raw[None], c]), axis=0), cell
            )
            unwrapped = (c[0] if prev_com is None else prev_com) + np.cumsum(steps, axis=0)
            prev_raw, prev_com = c[-1], unwrapped[-1]
            com[s : s + len(idx)] = unwrapped
            if has_vel:
                vel[s : s + len(idx)] = _apply(w_mass, traj.velocities(sl))
            u = minimum_image(pos[:, o_at] - pos[:, c_at], cell)
            cov[s : s + len(idx)] = u / np.linalg.norm(u, axis=2, keepdims=True)
            t = tfsi_cssc(pos, sites, cell)
            if tor is None:
                tor = f.create_dataset("torsion_CSSC", (n_t, t.shape[1]), "f4")
            tor[s : s + len(idx)] = t
            for k, frame_ids in enumerate(li_amide_contacts(pos, sites, cell, contact_cutoff_A)):
                ids.append(frame_ids)
                offsets.append(offsets[-1] + len(frame_ids))
            for k in range(0, len(idx)):
                if (s + k) % rdf_stride == 0:
                    for analysis in analyses:
                        analysis.add(Frame(pos[k], cell, c[k]))
            bar.update(len(idx))
        bar.close()
        f.create_dataset("contact_offsets", data=np.array(offsets, np.int64))
        f.create_dataset("contact_ids", data=np.concatenate(ids) if ids else np.zeros(0, np.int64))
        f.attrs["n_li"], f.attrs["n_amide"] = len(sites.li), len(amides)
        f.attrs["contact_cutoff_A"] = contact_cutoff_A
    return path
