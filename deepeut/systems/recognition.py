"""Molecule recognition in periodic frames (replaces TRAVIS's molecule recognition).

1. Bond graph: atoms i, j are bonded when r_ij < ``bond_factor`` × (r_cov,i + r_cov,j) (minimum image,
   cell list) for element pairs that are bonded in some species of the system, and below ``NEW_BOND_FACTOR``
   × (r_cov,i + r_cov,j) for the other pairs of those elements (a new kind of bond); so Li⁺···O contacts
   or hydrogen bonds are never taken for covalent bonds.
2. Fragments are the connected components of that graph.
3. Each fragment is matched to the system's species by graph isomorphism of element-labelled graphs:
   Weisfeiler–Lehman colour refinement of the whole frame at once (vectorised); a fragment matches a
   species when its colour multiset equals the species'; the first fragment of each kind is confirmed
   with an exact VF2 isomorphism (networkx), and every fragment of a species whose graph is not a tree
   too (colour refinement decides isomorphism for trees only). Atoms map to species atoms by colour
   (for trees colour classes are automorphism orbits), which gives the Fig. 1 labels; cis/trans amine
   hydrogens are told apart by the H–N–C=O dihedral of the frame.
4. A frame that does not match gets a precise reason per bad fragment: a broken bond, two molecules
   fused, a proton transfer, and, when the expected topology is given, which molecules are involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from deepeut.systems.species import SpeciesTemplate, cis_trans_label
from deepeut.utils.geometry import dihedral_deg
from deepeut.utils.geometry import neighbor_pairs

#: bonded when closer than this factor times the sum of covalent radii
BOND_FACTOR = 1.2
#: the same for element pairs bonded in no species (a new kind of bond: C–H in URA, O–H in the amides, S–S): a
#: tighter factor, so that two atoms bent towards each other across a shared neighbour (TFSI's S···S at 2.48 Å
#: when its S–N–S angle closes to ~100°) are not a bond, while an H on urea's carbon at 1.15 Å is
NEW_BOND_FACTOR = 1.1

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def template_pairs(templates: Sequence[SpeciesTemplate]) -> set:
    """Element pairs (Z_a ≤ Z_b) bonded in at least one species."""
    return {tuple(sorted(int(z) for z in t.numbers[bond])) for t in templates for bond in t.bonds}


def covalent_pairs(templates: Sequence[SpeciesTemplate]) -> set:
    """Element pairs (Z_a ≤ Z_b) that can form a covalent bond: every pair of the elements bonded in some species,
    not only the pairs bonded there, so that a new kind of bond (a urea H moved onto its carbon, a proton on an
    amide O) changes the graph. Elements only found as single-atom ions (Li⁺) bond to nothing: a Li–O contact is
    coordination, not a bond."""
    elements = sorted({int(z) for t in templates for bond in t.bonds for z in t.numbers[bond]})
    return {(za, zb) for k, za in enumerate(elements) for zb in elements[k:]}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of unsigned integers (vectorised, wrapping)."""
    with np.errstate(over="ignore"):
        x = (x + _M1).astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * _M2
        x = (x ^ (x >> np.uint64(27))) * _M3
        return x ^ (x >> np.uint64(31))


def wl_colours(numbers: np.ndarray, i: np.ndarray, j: np.ndarray, n_iter: int) -> np.ndarray:
    """Weisfeiler–Lehman colours (uint64) after ``n_iter`` refinements of an undirected graph."""
    c = _mix(numbers.astype(np.uint64))
    for _ in range(n_iter):
        h = _mix(c ^ np.uint64(0x5555555555555555))
        acc = np.zeros_like(c)
        with np.errstate(over="ignore"):
            np.add.at(acc, i, h[j])  # multiset of neighbour colours as a wrapping sum
            np.add.at(acc, j, h[i])
            c = _mix(c * np.uint64(31) + acc)
    return c


def _multiset_hash(colours: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros(n_groups, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(out, groups, _mix(colours))
    return out


def _formula(numbers: np.ndarray) -> str:
    from ase.data import chemical_symbols
    from ase.formula import Formula

    return Formula("".join(chemical_symbols[z] for z in numbers)).format("hill")


def _composition(numbers: np.ndarray) -> Dict[int, int]:
    z, c = np.unique(numbers, return_counts=True)
    return dict(zip(z.tolist(), c.tolist()))


def _is_tree(t: SpeciesTemplate) -> bool:
    return len(t.bonds) == t.n_atoms - 1


@dataclass
class Recognition:
    """Result of :func:`recognise` for one frame."""

    fragment: np.ndarray  # (n_atoms,) fragment index of each atom
    fragment_species: List[Optional[str]]  # species name per fragment (None: no match)
    labels: np.ndarray  # (n_atoms,) Fig. 1 label ('' for atoms of unmatched fragments)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> Dict[str, int]:
        names = [s for s in self.fragment_species if s is not None]
        return {n: names.count(n) for n in sorted(set(names))}


class MoleculeRecognizer:
    """Recognise the molecules of one system's species in any periodic frame."""

    @classmethod
    def for_system(cls, system) -> "MoleculeRecognizer":
        """The recognizer of a :class:`~deepeut.config.schema.SystemConfig`'s species."""
        from deepeut.systems.species import build_templates

        return cls(build_templates(system.species))

    def __init__(self, templates: Sequence[SpeciesTemplate], bond_factor: float = BOND_FACTOR):
        from ase.data import covalent_radii

        self.templates = list(templates)
        self.bond_factor = bond_factor
        self.radii = covalent_radii
        self.bonded_pairs = covalent_pairs(self.templates)
        in_species = template_pairs(self.templates)
        zmax = 119
        self._bond_cut = np.zeros((zmax, zmax))
        for za, zb in self.bonded_pairs:
            factor = bond_factor if (za, zb) in in_species else min(bond_factor, NEW_BOND_FACTOR)
            cut = factor * (covalent_radii[za] + covalent_radii[zb])
            self._bond_cut[za, zb] = self._bond_cut[zb, za] = cut
        self.max_cut = float(self._bond_cut.max()) if self.bonded_pairs else 0.0
        self.n_iter = max(t.n_atoms for t in self.templates)
        self._signatures: Dict[int, int] = {}  # multiset hash → template index
        self._colour_maps: List[Dict[int, int]] = []  # per template: colour → template atom index
        self._verified: set = set()
        self._template_colours: List[np.ndarray] = []
        for k, t in enumerate(self.templates):
            c = wl_colours(t.numbers, t.bonds[:, 0], t.bonds[:, 1], self.n_iter)
            self._template_colours.append(c)
            sig = int(_multiset_hash(c, np.zeros(t.n_atoms, int), 1)[0])
            self._signatures[sig] = k
            cmap: Dict[int, int] = {}
            for atom, col in enumerate(c.tolist()):
                prev = cmap.setdefault(col, atom)
                if t.base_labels[prev] != t.base_labels[atom] and _is_tree(t):
                    raise ValueError(
                        f"species {t.name}: graph-equivalent atoms {prev} and {atom} carry "
                        f"different labels ({t.base_labels[prev]}, {t.base_labels[atom]}); "
                        "use cis_trans or a geometric rule"
                    )
            self._colour_maps.append(cmap)

    # ------------------------------------------------------------------ bond graph
    def bonds(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray):
        """Covalent bonds ``(i, j, r_ij)`` of a periodic frame (Å)."""
        if self.max_cut == 0.0:
            return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
        i, j, d = neighbor_pairs(positions, cell, self.max_cut)
        r = np.linalg.norm(d, axis=1)
        keep = r < self._bond_cut[numbers[i], numbers[j]]
        return i[keep], j[keep], r[keep]

    # ------------------------------------------------------------------ recognition
    def recognise(
        self,
        positions: np.ndarray,
        numbers: np.ndarray,
        cell: np.ndarray,
        expected_molecule: Optional[np.ndarray] = None,
    ) -> Recognition:
        """Recognise every molecule of a frame (positions Å, any wrapping; cell 3×3 Å).

        ``expected_molecule`` (per-atom molecule ids from topology.json) adds which molecules a
        problem involves to the reasons.
        """
        positions = np.asarray(positions, dtype=float)
        numbers = np.asarray(numbers, dtype=int)
        cell = np.asarray(cell, dtype=float)
        n = len(numbers)
        bi, bj, br = self.bonds(positions, numbers, cell)
        graph = coo_matrix((np.ones(len(bi)), (bi, bj)), shape=(n, n))
        n_frag, frag = connected_components(graph, directed=False)
        colours = wl_colours(numbers, bi, bj, self.n_iter)
        sig = _multiset_hash(colours, frag, n_frag)
        sizes = np.bincount(frag, minlength=n_frag)
        match = np.array([self._signatures.get(int(s), -1) for s in sig.tolist()])
        match = np.where(sizes == np.array([self.templates[m].n_atoms if m >= 0 else -1 for m in match]), match, -1)
        self._confirm(match, frag, numbers, bi, bj)
        labels = np.full(n, "", dtype=object)
        for k, t in enumerate(self.templates):
            atoms = np.nonzero(match[frag] == k)[0]
            if len(atoms) == 0:
                continue
            cmap = self._colour_maps[k]
            tmpl_atom = np.array([cmap[c] for c in colours[atoms].tolist()])
            labels[atoms] = np.asarray(t.base_labels, dtype=object)[tmpl_atom]
            if t.cis_trans:
                self._label_cis_trans(t, k, atoms, tmpl_atom, positions, cell, colours, bi, bj, labels)
        species = [self.templates[m].name if m >= 0 else None for m in match]
        problems = self._explain(match, frag, numbers, positions, cell, bi, bj, br, expected_molecule)
        return Recognition(fragment=frag, fragment_species=species, labels=labels.astype(str), problems=problems)

    def _confirm(self, match, frag, numbers, bi, bj) -> None:
        """Exact VF2 isomorphism for the first fragment of each species, and for every non-tree one."""
        import networkx as nx
        from networkx.algorithms.isomorphism import GraphMatcher

        for f in np.nonzero(match >= 0)[0]:
            k = int(match[f])
            t = self.templates[k]
            if k in self._verified and _is_tree(t):
                continue
            atoms = np.nonzero(frag == f)[0]
            local = {a: x for x, a in enumerate(atoms)}
            g = nx.Graph()
            g.add_nodes_from((x, {"z": int(numbers[a])}) for a, x in local.items())
            sel = np.isin(bi, atoms)
            g.add_edges_from((local[a], local[b]) for a, b in zip(bi[sel], bj[sel]))
            h = nx.Graph()
            h.add_nodes_from((x, {"z": int(z)}) for x, z in enumerate(t.numbers))
            h.add_edges_from(map(tuple, t.bonds))
            if GraphMatcher(g, h, node_match=lambda a, b: a["z"] == b["z"]).is_isomorphic():
                self._verified.add(k)
            else:
                match[f] = -1

    def _label_cis_trans(self, t, k, atoms, tmpl_atom, positions, cell, colours, bi, bj, labels) -> None:
        """Dihedral H–N–C=O of the frame decides the (C)/(T) suffix of amine hydrogens."""
        n = len(positions)
        adj = coo_matrix((np.ones(2 * len(bi)), (np.r_[bi, bj], np.r_[bj, bi])), shape=(n, n)).tocsr()
        tc = self._template_colours[k]
        for a, ta in zip(atoms, tmpl_atom):
            if ta not in t.cis_trans:
                continue
            quartet = [a]
            for want in (int(tc[x]) for x in t.cis_trans[ta][1:]):
                prev = quartet[-1]
                nb = adj.indices[adj.indptr[prev] : adj.indptr[prev + 1]]
                cand = [x for x in nb if int(colours[x]) == want and x not in quartet]
                quartet.append(cand[0])
            phi = dihedral_deg(positions[quartet][None], cell)[0]
            labels[a] = cis_trans_label(t.base_labels[ta], phi)

    # ------------------------------------------------------------------ reasons
    def _explain(self, match, frag, numbers, positions, cell, bi, bj, br, expected) -> List[str]:
        problems = []
        comps = [_composition(t.numbers) for t in self.templates]
        for f in np.nonzero(match < 0)[0]:
            atoms = np.nonzero(frag == f)[0]
            comp = _composition(numbers[atoms])
            desc = f"fragment of {len(atoms)} atoms {_formula(numbers[atoms])} (atoms {_atom_list(atoms)})"
            reason = self._classify(comp, comps)
            if expected is not None:
                mols = np.unique(expected[atoms])
                if len(mols) > 1:
                    cross = np.nonzero((frag[bi] == f) & (expected[bi] != expected[bj]))[0]
                    detail = ", ".join(f"atom {bi[c]}–atom {bj[c]} at {br[c]:.2f} Å" for c in cross[:3])
                    reason = (
                        f"molecules {', '.join(map(str, mols))} are fused into one fragment "
                        f"(inter-molecular bonds: {detail})"
                    )
                else:
                    m = int(mols[0])
                    member = np.nonzero(expected == m)[0]
                    lost = np.setdiff1d(member, atoms)
                    if len(lost):
                        reason = (
                            f"molecule {m} is broken: {len(lost)} of its atoms are not bonded to this part"
                            f"{self._stretched(member, atoms, positions, numbers, cell)}"
                        )
            problems.append(f"{desc}: {reason}")
        return problems

    def _stretched(self, member, part, positions, numbers, cell) -> str:
        """Describe the longest template-like bond between ``part`` and the rest of its molecule."""
        from deepeut.utils.geometry import minimum_image

        rest = np.setdiff1d(member, part)
        d = minimum_image(positions[rest][None, :, :] - positions[part][:, None, :], cell)
        r = np.linalg.norm(d, axis=-1)
        cut = self._bond_cut[numbers[part][:, None], numbers[rest][None, :]]
        r = np.where(cut > 0, r, np.inf)
        a, b = np.unravel_index(np.argmin(r), r.shape)
        from ase.data import chemical_symbols as cs

        if not np.isfinite(r[a, b]):
            return ""
        return (
            f" (shortest bondable pair {cs[numbers[part[a]]]}{part[a]}–{cs[numbers[rest[b]]]}{rest[b]} "
            f"is {r[a, b]:.2f} Å, a bond needs < {cut[a, b]:.2f} Å)"
        )

    def _classify(self, comp: Dict[int, int], comps: List[Dict[int, int]]) -> str:
        if comp in comps:
            k = comps.index(comp)
            return f"has the formula of {self.templates[k].name} but not its bonds (rearranged)"
        for k, c in enumerate(comps):
            for dh in (1, -1):
                shifted = dict(c)
                shifted[1] = shifted.get(1, 0) + dh
                if shifted.get(1) == 0:
                    del shifted[1]
                if comp == shifted:
                    return f"{self.templates[k].name} with {'an extra' if dh > 0 else 'a missing'} H (proton transfer)"
        total = sum(comp.values())
        smallest = min(sum(c.values()) for c in comps)
        if (
            total > max(sum(c.values()) for c in comps)
            or total >= 2 * smallest
            and not any(all(comp.get(z, 0) <= n for z, n in c.items()) and all(z in c for z in comp) for c in comps)
        ):
            return "two or more molecules fused (bonds between molecules)"
        return "matches no species: part of a broken molecule"


def _atom_list(atoms: np.ndarray, limit: int = 6) -> str:
    s = ", ".join(map(str, atoms[:limit].tolist()))
    return s + (", ..." if len(atoms) > limit else "")
