"""Analysis numerics against known answers (issue 6)."""

from __future__ import annotations

import numpy as np
import pytest


def ornstein_uhlenbeck(n_steps, n_particles, dt, gamma, kT_over_m, seed=0):
    """Exact OU velocities (Langevin particles without forces) and their integrated positions: D = kT/(m γ)."""
    rng = np.random.default_rng(seed)
    a = np.exp(-gamma * dt)
    s = np.sqrt(kT_over_m * (1 - a**2))
    v = np.empty((n_steps, n_particles, 3))
    v[0] = rng.normal(scale=np.sqrt(kT_over_m), size=(n_particles, 3))
    noise = rng.normal(size=(n_steps, n_particles, 3))
    for t in range(1, n_steps):
        v[t] = a * v[t - 1] + s * noise[t]
    # exact position increments would need the joint OU-position law; trapezoidal integration is O(dt²) accurate
    r = np.concatenate([np.zeros((1, n_particles, 3)), np.cumsum(0.5 * (v[1:] + v[:-1]) * dt, axis=0)])
    return r, v


def test_fft_correlations_equal_brute_force():
    from deepeut.analysis.correlate import autocorrelation, msd

    rng = np.random.default_rng(0)
    r = np.cumsum(rng.normal(size=(400, 9, 3)), axis=0)
    brute = [np.mean(((r[k:] - r[: len(r) - k]) ** 2).sum(-1)) for k in range(60)]
    np.testing.assert_allclose(msd(r, 60, block=4), brute, atol=1e-9)
    v = rng.normal(size=(300, 5, 3))
    brute = [np.mean((v[k:] * v[: len(v) - k]).sum(-1)) for k in range(25)]
    np.testing.assert_allclose(autocorrelation(v, 25, block=2), brute, atol=1e-12)


def test_langevin_particles_give_D_from_vacf_and_msd():
    from deepeut.analysis.transport import diffusion

    gamma, kT_over_m, dt = 2.0, 1.5, 0.02  # 1/ps, Å²/ps², ps → D = 0.75 Å²/ps
    r, v = ornstein_uhlenbeck(20000, 100, dt, gamma, kT_over_m)
    d = diffusion(v, dt, r, max_lag=400)
    assert d.D_gk == pytest.approx(kT_over_m / gamma, rel=0.05)
    assert d.D_msd == pytest.approx(kT_over_m / gamma, rel=0.05)
    assert d.vacf_normalised[0] == pytest.approx(1.0)
    # the VACF decays as exp(-γ t)
    k = int(0.5 / dt)
    assert d.vacf_normalised[k] == pytest.approx(np.exp(-gamma * 0.5), abs=0.03)


def test_uncorrelated_ions_follow_nernst_einstein_and_bound_pairs_do_not_conduct():
    from deepeut.analysis.transport import conductivity, diffusion

    dt, n_pairs, T, V = 0.02, 100, 353.0, 30.0**3
    _, v = ornstein_uhlenbeck(20000, 2 * n_pairs, dt, 2.0, 1.5, seed=1)
    charges = np.r_[np.ones(n_pairs), -np.ones(n_pairs)]
    dp = diffusion(v[:, :n_pairs], dt, max_lag=400).D_gk
    dm = diffusion(v[:, n_pairs:], dt, max_lag=400).D_gk
    c = conductivity(v, charges, dt, T, V, dp, dm, n_pairs, max_lag=400)
    assert c.ratio == pytest.approx(1.0, abs=0.15)
    bound = np.concatenate([v[:, :n_pairs], v[:, :n_pairs]], axis=1)  # each anion moves with its cation
    c0 = conductivity(bound, charges, dt, T, V, dp, dp, n_pairs, max_lag=400)
    assert abs(c0.sigma_S_m) < 1e-9 * c.sigma_S_m + 1e-12


@pytest.mark.parametrize("backend", ["freud", "numpy"])
def test_ideal_gas_rdf_is_one(backend):
    from deepeut.analysis.base import Frame
    from deepeut.analysis.rdf import RDFAccumulator

    rng = np.random.default_rng(2)
    cell = np.eye(3) * 20.0
    acc = RDFAccumulator(
        {"AA": (np.arange(1000), np.arange(1000)), "AB": (np.arange(500), np.arange(500, 1000))},
        r_max=9.0,
        n_bins=30,
        backend=backend,
    )
    for _ in range(20):
        acc.add(Frame(rng.uniform(0, 20.0, size=(1000, 3)), cell))
    res = acc.result()
    for name in ("AA", "AB"):
        g = res[name].g[5:]  # small-r bins hold few pairs
        assert np.all(np.abs(g - 1.0) < 0.1), (name, g)
        assert res[name].cn[-1] == pytest.approx(
            (500 if name == "AB" else 999) / 8000 * 4 / 3 * np.pi * 9.0**3, rel=0.03
        )


@pytest.mark.parametrize("backend", ["freud", "numpy"])
def test_simple_cubic_lattice_shells_and_coordination_numbers(backend):
    from deepeut.analysis.base import Frame
    from deepeut.analysis.rdf import RDFAccumulator

    a, n = 3.0, 8
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) * a
    cell = np.eye(3) * a * n
    acc = RDFAccumulator({"all": (np.arange(len(grid)), np.arange(len(grid)))}, r_max=6.0, n_bins=600, backend=backend)
    acc.add(Frame(grid + 1e-3, cell))
    res = acc.result()["all"]
    peaks = res.r[res.g > 0]
    for shell_r in (a, a * np.sqrt(2), a * np.sqrt(3), 2 * a):
        assert np.min(np.abs(peaks - shell_r)) < 0.01
    cn_at = lambda r: np.interp(r, acc.edges[1:], res.cn)  # noqa: E731
    assert cn_at(3.5) == pytest.approx(6, rel=1e-4) and cn_at(4.5) == pytest.approx(18, rel=1e-4)
    assert cn_at(5.5) == pytest.approx(26, rel=1e-4)  # freud histograms in float32
    assert res.first_min_A == pytest.approx(a, abs=0.5) or res.first_min_A > a  # minimum just after the first shell


def test_vccf_of_independent_particles_vanishes():
    from deepeut.analysis.transport import vccf

    rng = np.random.default_rng(3)
    _, v = ornstein_uhlenbeck(2000, 200, 0.02, 2.0, 1.5, seed=4)
    pos = rng.uniform(0, 15.0, size=(2000, 200, 3))
    c = vccf(v[:, :100], v[:, 100:], pos[:, :100], pos[:, 100:], np.eye(3) * 15.0, 6.0, 100)
    assert np.all(np.abs(c) < 0.05)
    same = vccf(v[:, :100], v[:, :100], pos[:, :100], pos[:, :100], np.eye(3) * 15.0, 6.0, 100, same=True)
    assert np.all(np.abs(same) < 0.05)


def test_exponential_pair_existence_lifetime_is_recovered():
    from deepeut.analysis.lifetimes import lifetime, pair_existence_acf

    rng = np.random.default_rng(5)
    n_t, dt, tau = 6000, 0.01, 0.5  # frames, ps, ps
    h = np.zeros((n_t, 3000), dtype=np.uint8)
    for p in range(3000):  # one residence episode per pair, exponential length
        start, length = rng.integers(0, n_t), int(round(rng.exponential(tau) / dt))
        h[start : start + length, p] = 1
    lag = np.arange(300) * dt
    c = pair_existence_acf(h, 300)
    assert c[0] == pytest.approx(1.0)
    assert lifetime(lag, c) == pytest.approx(tau, rel=0.15)


def test_rotational_relaxation_time_of_a_freely_rotating_vector():
    from deepeut.analysis.lifetimes import lifetime, vector_acf

    rng = np.random.default_rng(6)
    d_r, dt, n_t, n = 0.5, 0.01, 4000, 100  # rad²/ps rotational diffusion → τ_R = 1/(2 D_r) = 1 ps
    u = np.empty((n_t, n, 3))
    u[0] = rng.normal(size=(n, 3))
    u[0] /= np.linalg.norm(u[0], axis=1, keepdims=True)
    for t in range(1, n_t):
        step = rng.normal(scale=np.sqrt(2 * d_r * dt), size=(n, 3))
        step -= (step * u[t - 1]).sum(1, keepdims=True) * u[t - 1]  # tangent kick
        w = u[t - 1] + step
        u[t] = w / np.linalg.norm(w, axis=1, keepdims=True)
    lag = np.arange(400) * dt
    c = vector_acf(u, 400)
    assert c[0] == pytest.approx(1.0)
    assert lifetime(lag, c, n_terms=1) == pytest.approx(1.0 / (2 * d_r), rel=0.15)


def _rigid_trajectory(tmp_path, wrap: bool, n_t=5000, dt_ps=0.02):
    """The tiny URA box with every molecule translating rigidly with OU velocities (known D = 0.75 Å²/ps)."""
    from conftest import built_box
    from deepeut.trajectory.h5md import H5MDWriter, OBSERVABLES

    cfg, box = built_box("ura")
    mol = box.topology.molecule
    n_mol = mol.max() + 1
    r, v = ornstein_uhlenbeck(n_t, n_mol, dt_ps, 2.0, 1.5, seed=7)
    cell = box.atoms.cell.array
    path = tmp_path / f"rigid_{'wrapped' if wrap else 'unwrapped'}.h5"
    with H5MDWriter(path, box.atoms.numbers, box.atoms.get_masses(), cell, mol) as w:
        for t in range(n_t):
            pos = box.atoms.positions + r[t][mol]
            if wrap:  # every atom wrapped into the cell: molecules are cut by the boundary
                pos = pos - np.floor(pos / np.diag(cell)) * np.diag(cell)
            w.append(t, t * dt_ps, pos, v[t][mol], {k: 0.0 for k in OBSERVABLES})
    return cfg, path


def test_analysis_is_independent_of_periodic_wrapping_and_recovers_D(tmp_path):
    from conftest import load_config
    from deepeut.analysis.task import analyse_trajectory

    cfg = load_config(
        "system=ura",
        "analysis.rdf_stride=50",
        "analysis.vccf=false",
        "analysis.cdf=false",
        "analysis.lifetimes=false",
        "analysis.conductivity=false",
    )
    results = {}
    for wrap in (False, True):
        _, path = _rigid_trajectory(tmp_path, wrap)
        results[wrap] = analyse_trajectory(cfg, path, tmp_path / f"an_{wrap}")
    for s in ("Li", "TFSI", "amide"):
        a, b = results[False]["diffusion"][s], results[True]["diffusion"][s]
        np.testing.assert_allclose(a["msd_A2"], b["msd_A2"], rtol=1e-6, atol=1e-8)
        assert a["D_gk_A2_ps"] == pytest.approx(b["D_gk_A2_ps"], rel=1e-5)
    # 11 molecules only: D of all molecules together (count-weighted) is within 25 % of kT/(mγ) = 0.75 Å²/ps
    counts = {"Li": 2, "TFSI": 2, "amide": 7}
    for key in ("D_msd_A2_ps", "D_gk_A2_ps"):
        d_all = sum(counts[s] * results[True]["diffusion"][s][key] for s in counts) / sum(counts.values())
        assert d_all == pytest.approx(0.75, rel=0.25), key
    for k in results[False]["rdf"]:
        np.testing.assert_allclose(results[False]["rdf"][k]["g"], results[True]["rdf"][k]["g"], atol=1e-9)


def test_streamed_pair_existence_equals_dense_and_lazy_columns_equal_arrays():
    from deepeut.analysis.correlate import Columns, autocorrelation
    from deepeut.analysis.lifetimes import contacts_to_series, pair_existence_acf, pair_existence_acf_from_contacts

    rng = np.random.default_rng(8)
    per_frame = [np.unique(rng.integers(0, 300, size=rng.integers(0, 40))) for _ in range(500)]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in per_frame])])
    ids = np.concatenate(per_frame)
    _, h = contacts_to_series(per_frame, 500)
    np.testing.assert_allclose(
        pair_existence_acf_from_contacts(offsets, ids, 50, pairs_per_pass=37), pair_existence_acf(h, 50), rtol=1e-10
    )
    v = rng.normal(size=(200, 30, 3))
    cols = np.array([2, 5, 11, 29])
    np.testing.assert_allclose(autocorrelation(Columns(v, cols), 20, block=3), autocorrelation(v[:, cols], 20))


def test_analysis_stage_writes_tables_and_figures(tmp_path):
    import json

    from conftest import run_cli

    _, path = _rigid_trajectory(tmp_path, wrap=True, n_t=1000)
    res = run_cli(
        "stage=analysis",
        "system=ura",
        f"analysis.trajectories=[{path},{path}]",
        "analysis.rdf_stride=20",
        f"output_dir={tmp_path / 'out'}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "out"
    tables = json.loads((out / "tables.json").read_text())
    assert set(tables["I"]) == {"cn_Li_O_TFSI", "cn_Li_O_amide", "cn_Hamide_O_TFSI", "cn_Hamide_O_amide"}
    assert tables["II"]["D_Li"]["paper"] == 1.07 and tables["II"]["D_Li"]["n_replicas"] == 2
    assert tables["III"]["sigma_exp"]["paper"] == 0.32 and np.isfinite(tables["III"]["sigma_GK"]["ours"])
    assert 0 < tables["II"]["t_plus"]["ours"] < 1
    text = (out / "tables.txt").read_text()
    assert "Table I" in text and "Table III" in text and "S/m" in text and "1e-11 m^2/s" in text
    for fig in (
        "fig5_6_rdf.png",
        "fig7_com_rdf.png",
        "fig9_cdf.png",
        "fig11_vacf.png",
        "fig12_msd.png",
        "fig13_vccf.png",
        "figS7_lifetimes.png",
    ):
        assert (out / fig).stat().st_size > 1000, fig
    assert list((out / "curves").glob("*.csv"))
    cubes = sorted(p.name for p in (out / "replica_0").glob("sdf_around_*.cube"))
    assert cubes == [f"sdf_around_{r}_{o}.cube" for r in ("TFSI", "amide") for o in ("Li", "TFSI", "amide")]


def test_yeh_hummer_correction_value():
    from deepeut.analysis.transport import yeh_hummer

    # water-like: 298 K, 0.89 mPa s, L = 30 Å → ξ k_B T / (6 π η L) = 2.32e-10 m²/s = 0.0232 Å²/ps
    assert yeh_hummer(0.0, 298.0, 0.89, 30.0) == pytest.approx(2.3194e-10 / 1e-8, rel=1e-3)
    assert yeh_hummer(0.1, 298.0, 0.89, 30.0) - yeh_hummer(0.0, 298.0, 0.89, 30.0) == pytest.approx(0.1)


def test_frame_analysis_counts_frames_mean_volume_and_bins_the_chosen_points():
    """The per-frame base keeps frame count and mean volume; an RDF on ``com`` bins the CoMs, not the atoms."""
    from deepeut.analysis.base import Frame
    from deepeut.analysis.rdf import RDFAccumulator

    rng = np.random.default_rng(4)
    pts = [rng.uniform(0, 12.0, size=(200, 3)) for _ in range(3)]
    cells = [np.eye(3) * 12.0, np.eye(3) * 12.0, np.diag([12.0, 12.0, 13.5])]
    pairs = {"all": (np.arange(200), np.arange(200))}
    on_atoms = RDFAccumulator(pairs, 5.0, 50, backend="numpy")
    g_atoms = on_atoms.run(Frame(p, c) for p, c in zip(pts, cells))["all"].g
    on_com = RDFAccumulator(pairs, 5.0, 50, backend="numpy", points="com")
    noise = [rng.uniform(0, 12.0, size=(200, 3)) for _ in range(3)]  # atom positions the CoM RDF must ignore
    g_com = on_com.run(Frame(n, c, p) for n, p, c in zip(noise, pts, cells))["all"].g
    assert on_com.n_frames == 3 and on_com.mean_volume == pytest.approx((2 * 12.0**3 + 12.0**2 * 13.5) / 3)
    np.testing.assert_allclose(g_com, g_atoms)


def test_sdf_of_a_fixed_neighbour_peaks_where_it_sits(tmp_path):
    """A CoM held at (+2, 0, 0) Å in the reference molecule's own frame shows up in that voxel of the cube file."""
    from deepeut.analysis.base import Frame
    from deepeut.analysis.sdf import SDFAccumulator, read_cube

    rng = np.random.default_rng(9)
    cell = np.eye(3) * 30.0
    acc = SDFAccumulator(
        np.array([[0, 1, 2]]),
        np.array([[0, 1, 2]]),
        np.array([6, 8, 7]),
        {"X": np.array([1])},
        np.array([0]),
        half_width=4.0,
        n_bins=8,
    )
    for _ in range(20):  # random orientations of the reference; the observed CoM rides along at +2 Å on its x axis
        rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        origin = rng.uniform(5, 25, 3)
        pos = origin + np.array([[0, 0, 0], [1.2, 0, 0], [0.5, 1.0, 0]]) @ rot.T
        com = np.array([origin, origin + np.array([2.0, 0, 0]) @ rot.T])
        acc.add(Frame(pos, cell, com))
    path = acc.write_cubes(tmp_path / "sdf")["X"]
    grid = read_cube(path)
    assert np.unravel_index(np.argmax(grid), grid.shape) == (6, 4, 4)  # x = +2 Å → bin 6 of 8 over [-4, 4)
    assert grid.sum() * 1.0**3 * (1 / 27000) == pytest.approx(1.0, rel=1e-6)  # one neighbour per reference


@pytest.mark.parametrize("backend", ["freud", "numpy"])
def test_coordination_numbers_count_intermolecular_pairs_by_default(backend):
    from deepeut.analysis.base import Frame
    from deepeut.analysis.rdf import RDFAccumulator

    # two H–O molecules: each H is 1.0 Å from its own O; across molecules H_a–O_b = 2.0 Å and H_b–O_a = 3.16 Å
    pos = np.array([[5, 5, 5], [6, 5, 5], [5, 5, 7], [5, 5, 8]], float)  # H_a, O_a, O_b, H_b
    molecule = np.array([0, 0, 1, 1])
    h, o = np.array([0, 3]), np.array([1, 2])
    cell = np.eye(3) * 20.0
    acc = RDFAccumulator({"H-O": (h, o)}, 4.5, 90, backend=backend, molecule=molecule)
    res = acc.run([Frame(pos, cell)])["H-O"]
    k = int(round(2.5 / 0.05)) - 1  # the bin ending at 2.5 Å
    assert res.cn[k] == pytest.approx(0.5)  # H_a–O_b only: one pair per two H
    assert res.cn_all[k] == pytest.approx(1.5)  # plus both intramolecular O–H bonds
    assert res.cn[-1] == pytest.approx(1.0)  # both intermolecular pairs within 4.5 Å
    plain = RDFAccumulator({"H-O": (h, o)}, 4.5, 90, backend=backend)
    plain.add(Frame(pos, cell))
    assert plain.result()["H-O"].cn[k] == pytest.approx(1.5) and plain.result()["H-O"].cn_all is None


def test_convergence_status_of_transport_and_lifetimes():
    from deepeut.analysis.convergence import diffusion_status, lifetime_status, statuses

    lag = np.linspace(0, 300, 301)  # ps, 30 % of a 1 ns run
    diffusive = {"lag_ps": lag.tolist(), "msd_A2": (6 * 0.1 * lag + 1.0).tolist(), "D_msd_A2_ps": 0.1}
    assert diffusion_status(diffusive, 1000.0, 0.3) is None  # β ≈ 1 and √MSD = 13 Å
    ballistic = {"lag_ps": lag[:11].tolist(), "msd_A2": (0.5 * lag[:11] ** 2).tolist(), "D_msd_A2_ps": 0.5}
    why = diffusion_status(ballistic, 33.0, 0.3)
    assert why == (
        "not converged: MSD not diffusive (β = 2.00, needs 1 ± 0.15); molecules moved 7.1 Å "
        "(needs ≥ 10 Å) in a 33 ps run; a run of ≳ 111 ps would do at this D"
    )
    assert lifetime_status(500.0, 1000.0).startswith("extrapolated: the 1e+03 ps run is shorter than 3 × τ = 1.5e+03")
    assert lifetime_status(100.0, 1000.0) is None
    res = [
        {
            "diffusion": {"Li": ballistic, "TFSI": diffusive, "amide": diffusive},
            "lifetimes": {"tau_Li_amide_ps": 100.0, "tau_R_ps": 100.0},
        }
    ]
    st = statuses(res, 1000.0, 64, 0.3, 0.63)
    assert "D_Li" in st and "D_TFSI" not in st and st["t_plus"] == "not converged: D_Li is not (see there)"
    assert "cn_Li_O_amide" not in st and "tau_R" not in st
    assert "too few ions" in statuses(res, 1000.0, 2, 0.3, 0.63)["D_TFSI"]


def test_green_kubo_fit_on_pure_noise_stays_within_the_data():
    """The running integral of white-noise 'VACFs' has no plateau: the fit must not extrapolate beyond the data
    range (one unbounded fit gave σ_GK/σ_NE = −723 on a real replica)."""
    from deepeut.analysis.correlate import fit_exponential_plateau

    rng = np.random.default_rng(11)
    t = np.arange(300) * 0.01
    for _ in range(50):
        y = np.cumsum(rng.normal(size=300)) * 0.01
        a, tau = fit_exponential_plateau(t, y)
        lo, hi = y.min(), y.max()
        assert lo - 0.5 * (hi - lo) - 1e-9 <= a <= hi + 0.5 * (hi - lo) + 1e-9
    clean = 2.0 * (1 - np.exp(-t / 0.3))
    a, tau = fit_exponential_plateau(t, clean)
    assert a == pytest.approx(2.0, rel=1e-3) and tau == pytest.approx(0.3, rel=1e-2)


def test_first_minimum_ignores_a_wiggle_on_the_peak_flank():
    from deepeut.analysis.rdf import first_minimum

    # a sharp first peak whose falling flank has a shallow noise dip (bins 7-9), then the real shell end (bin 15)
    g = np.array([0, 0, 0.5, 4, 9, 10, 9, 7.5, 7.5, 7.5, 8.6, 8.8, 8.6, 6, 3, 1.5, 0.8, 0.6, 0.7, 0.9, 1, 1.1, 1, 1])
    r = 0.1 * np.arange(1, len(g) + 1)
    assert first_minimum(r, g) == pytest.approx(r[17], abs=0.11)  # not r[8], the dip on the flank
    # a split first peak (2 Li over 2 ps): a deep dip at bin 6 that climbs straight back to the peak height
    g = np.array([0, 0, 2, 12, 17, 18, 12, 9, 12, 18, 17, 8, 2, 0.3, 0.1, 0.2, 0.5, 1, 1.5, 1.4, 1.2, 1, 1, 1])
    assert first_minimum(r, g) == pytest.approx(r[14], abs=0.11)  # not r[7], inside the peak


def test_two_term_relaxation_integral_is_recovered_from_a_run_shorter_than_its_slow_time():
    """A fast librational drop plus a slow reorientation, c(t) = 0.3 e^(−t/0.2) + 0.7 e^(−t/3) measured to 2 ps:
    τ_R = ∫c dt = 0.3·0.2 + 0.7·3 = 2.16 ps comes back from the data plus a two-term tail."""
    from deepeut.analysis.lifetimes import lifetime

    t = np.arange(0, 2.0, 0.01)
    c = 0.3 * np.exp(-t / 0.2) + 0.7 * np.exp(-t / 3.0)
    assert lifetime(t, c, n_terms=2) == pytest.approx(2.16, rel=0.02)


def test_green_kubo_status_says_when_the_running_integral_has_no_plateau():
    from deepeut.analysis.convergence import plateau_status, statuses

    t = np.arange(300) * 0.01  # a 3 ps lag window
    reached = {"lag_ps": t.tolist(), "fit_tau_ps": 0.3}
    assert plateau_status(reached) is None
    rising = {"lag_ps": t.tolist(), "fit_tau_ps": 3.0}  # τ at the window: the limit is extrapolated
    assert plateau_status(rising).startswith("plateau not reached: the running Green–Kubo integral relaxes with τ = 3")
    assert "no plateau" in plateau_status({"lag_ps": t.tolist(), "fit_tau_ps": float("nan")})
    lag = np.linspace(0, 300, 301)
    diffusive = {"lag_ps": lag.tolist(), "msd_A2": (6 * 0.1 * lag + 1.0).tolist(), "D_msd_A2_ps": 0.1}
    res = [{"diffusion": {s: diffusive for s in ("Li", "TFSI", "amide")}, "conductivity": rising}]
    st = statuses(res, 1000.0, 64, 0.3, None)
    assert st["sigma_GK"].startswith("plateau not reached") and "sigma_NE" not in st and "t_plus" not in st


def test_vccf_shell_is_the_papers_where_it_names_one_else_the_first_minimum():
    from deepeut.analysis.task import shell_radius

    assert shell_radius("Li-TFSI", 3.78, {"Li-TFSI": 5.2}) == (5.2, "analysis.vccf_shell_A (the paper's shell)")
    assert shell_radius("TFSI-Li", 3.78, {"Li-TFSI": 5.2})[0] == 5.2
    assert shell_radius("Li-amide", 3.1, {"Li-TFSI": 5.2}) == (3.1, "first minimum of the CoM g(r)")


def test_short_contacts_are_flagged_with_the_validation_limits():
    from deepeut.analysis.convergence import short_contacts

    r = np.arange(0.005, 6.0, 0.01)
    close = {"r_A": r.tolist(), "g": np.where(r > 1.30, 1.0, 0.0).tolist()}
    far = {"r_A": r.tolist(), "g": np.where(r > 1.90, 1.0, 0.0).tolist()}
    limits = {"Li-O": 1.7, "H-O": 1.4}
    res = [{"rdf": {"Li-O_amide": far, "Hamide-O_TFSI": far}}, {"rdf": {"Li-O_amide": close, "Li-Li": close}}]
    out = short_contacts(res, limits)
    assert len(out) == 1 and out[0].startswith("Li-O_amide contacts down to 1.30 Å, below the 1.7 Å")
    assert short_contacts(res[:1], limits) == []


def mixed_tables():
    """Table II with an unconverged D (2 ps run), an uncomputed t+ and a converged τ_R."""
    return {
        "II": {
            "D_Li": {
                "ours": 748.0,
                "ci95": 80.0,
                "paper": 1.07,
                "unit": "1e-11 m^2/s",
                "converged": False,
                "status": "not converged: MSD not diffusive",
            },
            "t_plus": {"ours": None, "paper": 0.56, "unit": "", "status": "not computed: needs >= 20 frames"},
            "tau_R": {"ours": 0.9, "ci95": 0.1, "paper": 1.53, "unit": "ns", "converged": True},
        }
    }


def test_report_keeps_unconverged_numbers_apart_from_the_papers(tmp_path):
    import json

    from deepeut.report.document import Table
    from deepeut.report.report import tables_sections

    tabs = mixed_tables()
    (tmp_path / "tables.json").write_text(json.dumps(tabs))
    blocks = tables_sections(tmp_path)[0].blocks
    compared, apart = [b for b in blocks if isinstance(b, Table)]
    assert [row[0] for row in compared.rows] == ["tau_R"] and compared.rows[0][4] == "1.53"
    assert [row[0] for row in apart.rows] == ["D_Li", "t_plus"] and "paper" not in " ".join(apart.header)
    assert "MSD not diffusive" in apart.rows[0][-1]


def test_msd_fit_window_starts_where_the_motion_becomes_diffusive():
    """Ballistic (t²) up to 1 ps, then diffusive (6 D t, D = 0.1 Å²/ps): the window starts after the crossover,
    D_MSD is exact there, and a sub-diffusive curve falls back to the paper's second half with its β."""
    from deepeut.analysis.transport import linear_slope, msd_fit_window

    t = np.linspace(0, 20, 401)
    m = np.where(t < 1.0, 0.6 * t**2, 0.6 * t - 0.3)  # continuous value and slope at t = 1 ps
    i, beta = msd_fit_window(t, m)
    assert 1.0 <= t[i] <= 5.0 and abs(beta - 1) <= 0.15
    assert linear_slope(t[i:], m[i:]) / 6 == pytest.approx(0.1, rel=1e-9)
    i, beta = msd_fit_window(t, t**0.5)
    assert i == 200 and beta == pytest.approx(0.5, abs=1e-6)


def test_text_tables_set_no_unconverged_number_beside_the_papers():
    from conftest import load_config
    from deepeut.analysis.task import tables_text

    tabs = mixed_tables()
    lines = tables_text(load_config("system=ura"), tabs).splitlines()
    d_li = next(x for x in lines if x.startswith("D_Li"))
    assert "(748)" in d_li and "1.07" not in d_li and "[not converged: MSD not diffusive]" in d_li
    assert "1.53" in next(x for x in lines if x.startswith("tau_R"))


def test_green_kubo_d_from_three_time_blocks_covers_the_true_value():
    """400 trajectories of 8 Ornstein–Uhlenbeck particles (D = kT/(mγ) = 0.2 Å²/ps exactly), analysed as one
    replica is: D_GK of three consecutive time blocks, mean ± Student-t 95 % half-width (2 degrees of freedom).
    The true D lies inside in 90–98 % of them."""
    from deepeut.analysis.transport import diffusion, max_lag_frames
    from deepeut.utils.statistics import block_error, t_half_width

    rng = np.random.default_rng(0)
    dt, gamma, kT_m = 0.01, 5.0, 1.0
    a, s = np.exp(-gamma * dt), np.sqrt(kT_m * (1 - np.exp(-2 * gamma * dt)))
    hits = 0
    for _ in range(400):
        v = np.empty((1500, 8, 3))
        v[0] = rng.normal(scale=np.sqrt(kT_m), size=(8, 3))
        noise = rng.normal(size=v.shape) * s
        for t in range(1, len(v)):
            v[t] = a * v[t - 1] + noise[t]
        vals = [diffusion(v[b : b + 500], dt, None, max_lag_frames(500, 0.3)).D_gk for b in (0, 500, 1000)]
        hits += abs(np.mean(vals) - kT_m / gamma) <= t_half_width(block_error(vals), 2)
    assert 0.90 <= hits / 400 <= 0.98


def test_vccf_equals_the_pair_by_pair_sum_of_eq_15():
    """Eq. 15 summed pair by pair (minimum image, shell test at each origin) equals the per-particle pass."""
    from deepeut.analysis.transport import vccf

    rng = np.random.default_rng(12)
    cell = np.eye(3) * 12.0
    T, ni, nj, lag, R = 60, 7, 9, 10, 4.0
    vi, vj = rng.normal(size=(T, ni, 3)), rng.normal(size=(T, nj, 3))
    pi, pj = rng.uniform(0, 12, size=(T, ni, 3)), rng.uniform(0, 12, size=(T, nj, 3))
    origins = [0, 10, 25, 40]
    acc, n = np.zeros(lag), 0
    for t0 in origins:
        d = pj[t0][None] - pi[t0][:, None]
        d -= 12.0 * np.round(d / 12.0)
        for a, b in zip(*np.nonzero(np.linalg.norm(d, axis=2) < R)):
            acc += (vi[t0, a][None] * vj[t0 : t0 + lag, b]).sum(1)
            n += 1
    expected = acc / n / np.sqrt((vi**2).sum(-1).mean() * (vj**2).sum(-1).mean())
    np.testing.assert_allclose(vccf(vi, vj, pi, pj, cell, R, lag, origins=origins), expected, rtol=1e-10, atol=1e-12)
