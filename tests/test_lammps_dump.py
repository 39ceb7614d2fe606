"""The streaming LAMMPS dump reader: known positions back from every column layout, a cut last frame, the
file's time field, dumps without velocities, a wrong system named on the first frame."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import built_box, load_config


def write_dump(
    path,
    positions,
    cell,
    velocities=None,
    mol=None,
    elements=None,
    layout="xu",
    steps=None,
    time_per_step=None,
    rng=None,
):
    """Write ``positions`` (unwrapped, Å) as a dump custom file in the given column layout, atoms in a random
    order per frame (as LAMMPS writes them without ``sort id``)."""
    rng = rng or np.random.default_rng(0)
    n_t, n = positions.shape[:2]
    steps = steps if steps is not None else np.arange(n_t) * 10
    L = np.diag(cell)
    with open(path, "w") as f:
        for t in range(n_t):
            cols = ["id", *(["mol"] if mol is not None else []), "element"]
            x = positions[t]
            if layout == "xu":
                cols += ["xu", "yu", "zu"]
                data = [x]
            elif layout == "x_image":
                img = np.floor(x / L)
                cols += ["x", "y", "z", "ix", "iy", "iz"]
                data = [x - img * L, img]
            else:  # scaled, wrapped, with images
                img = np.floor(x / L)
                cols += ["xs", "ys", "zs", "ix", "iy", "iz"]
                data = [(x - img * L) / L, img]
            if velocities is not None:
                cols += ["vx", "vy", "vz"]
                data.append(velocities[t])
            f.write(f"ITEM: TIMESTEP\n{steps[t]}\n")
            if time_per_step is not None:
                f.write(f"ITEM: TIME\n{steps[t] * time_per_step}\n")
            f.write(
                f"ITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp pp\n"
                + "".join(f"0.0 {L[k]}\n" for k in range(3))
                + f"ITEM: ATOMS {' '.join(cols)}\n"
            )
            table = np.concatenate(data, axis=1)
            for j in rng.permutation(n):
                head = [str(j + 1), *([str(mol[j] + 1)] if mol is not None else []), elements[j]]
                f.write(" ".join(head + [f"{v:.8f}" for v in table[j]]) + "\n")
    return path


def _rigid(n_t=40, seed=3):
    """The tiny URA box with molecules displaced rigidly by random walks (some leave the cell)."""
    cfg, box = built_box("ura")
    mol = box.topology.molecule
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(scale=0.4, size=(n_t, mol.max() + 1, 3)), axis=0)
    walk -= walk[0]  # the first frame is the built box (intact molecules)
    pos = box.atoms.positions[None] + walk[:, mol]
    vel = rng.normal(size=pos.shape)
    return box, mol, pos, vel


@pytest.mark.parametrize("layout", ["xu", "x_image", "xs_image"])
def test_every_position_layout_gives_the_unwrapped_positions_in_id_order(tmp_path, layout):
    from deepeut.trajectory.lammps_dump import LammpsDump

    box, mol, pos, vel = _rigid()
    path = write_dump(
        tmp_path / "d.lammpstrj", pos, box.atoms.cell.array, vel, mol, box.atoms.get_chemical_symbols(), layout
    )
    with LammpsDump(path, 0.5, chunk_mb=0.01) as d:  # tiny chunks: many parser calls, same answer
        assert d.n_frames == len(pos) and d.n_atoms == len(box.atoms)
        np.testing.assert_allclose(d.positions(slice(3, 17, 2)), pos[3:17:2], atol=1e-5)
        np.testing.assert_allclose(d.velocities([0, 39]), vel[[0, 39]], atol=1e-7)
        np.testing.assert_allclose(d.times_ps, np.arange(40) * 10 * 0.5e-3)
        np.testing.assert_array_equal(d.numbers, box.atoms.numbers)
        np.testing.assert_array_equal(d.molecule, mol)


def test_a_cut_last_frame_is_dropped_and_a_missing_column_is_named(tmp_path):
    from deepeut.trajectory.h5md import TrajectoryUnreadable
    from deepeut.trajectory.readers import open_trajectory

    box, mol, pos, vel = _rigid(n_t=5)
    path = write_dump(tmp_path / "d.lammpstrj", pos, box.atoms.cell.array, vel, mol, box.atoms.get_chemical_symbols())
    text = path.read_text()
    path.write_text(text[: len(text) - 1500])  # a run killed while writing its last frame
    with open_trajectory(path, 0.5) as d:
        assert d.n_frames == 4 and d.cut_frames == 1
        np.testing.assert_allclose(d.positions(slice(3, 4))[0], pos[3], atol=1e-5)
    path.write_text(text.replace(" element ", " type "))
    with pytest.raises(TrajectoryUnreadable, match="needs an 'element' column"):
        open_trajectory(path, 0.5)


def test_the_files_own_time_field_must_agree_with_the_timestep(tmp_path):
    from deepeut.config import ConfigError
    from deepeut.trajectory.readers import open_trajectory

    box, mol, pos, vel = _rigid(n_t=3)
    args = (pos, box.atoms.cell.array, vel, mol, box.atoms.get_chemical_symbols())
    real = write_dump(tmp_path / "real.lammpstrj", *args, time_per_step=0.5)  # units real: fs
    metal = write_dump(tmp_path / "metal.lammpstrj", *args, time_per_step=0.0005)  # units metal: ps
    for path in (real, metal):
        with open_trajectory(path, 0.5) as d:
            assert d.n_frames == 3
    with pytest.raises(ConfigError, match=r"analysis.timestep_fs: real.lammpstrj: .*0.5 time units per step"):
        open_trajectory(real, 10.0)  # 20× too long a step would give D 20× too small


def test_a_dump_without_velocities_gives_what_positions_allow_and_lists_the_rest(tmp_path):
    from deepeut.analysis.task import analyse_trajectory

    box, mol, pos, _ = _rigid(n_t=60)
    path = write_dump(
        tmp_path / "d.lammpstrj", pos, box.atoms.cell.array, None, mol, box.atoms.get_chemical_symbols(), "x_image"
    )
    cfg = load_config("system=ura", "analysis.timestep_fs=0.5", "analysis.rdf_stride=5", "analysis.sdf=false")
    res = analyse_trajectory(cfg, path, tmp_path / "an")
    assert {"diffusion", "conductivity", "vccf", "block_sem"} <= set(res["skipped"])
    assert all("no velocities" in res["skipped"][k] for k in ("diffusion", "conductivity", "vccf"))
    assert "diffusion" not in res and "conductivity" not in res
    assert np.isfinite(res["rdf"]["Li-O_TFSI"]["g"]).all() and "lifetimes" in res


def test_a_wrong_system_or_a_mol_column_that_disagrees_is_named_on_the_first_frame(tmp_path):
    from deepeut.analysis.task import sites_for
    from deepeut.config import ConfigError
    from deepeut.trajectory.readers import open_trajectory

    box, mol, pos, vel = _rigid(n_t=2)
    path = write_dump(tmp_path / "d.lammpstrj", pos, box.atoms.cell.array, vel, mol, box.atoms.get_chemical_symbols())
    with open_trajectory(path, 0.5) as d, pytest.raises(ConfigError, match="system=act"):
        sites_for(load_config("system=act"), d)
    shuffled = mol.copy()
    shuffled[[0, -1]] = shuffled[[-1, 0]]
    path = write_dump(
        tmp_path / "m.lammpstrj", pos, box.atoms.cell.array, vel, shuffled, box.atoms.get_chemical_symbols()
    )
    with open_trajectory(path, 0.5) as d, pytest.raises(ConfigError, match="molecule ids"):
        sites_for(load_config("system=ura"), d)
