"""Unit conversions, defined once. Internal units: Å, eV, ps, amu, e."""

from ase import units as _u

#: 1 kcal/mol in eV (0.0433641 eV)
KCAL_PER_MOL_IN_EV = _u.kcal / _u.mol
#: Avogadro's number (1/mol)
AVOGADRO = 6.02214076e23
#: 1 Å^3 in cm^3
A3_IN_CM3 = 1e-24


def ev_to_kcal_per_mol(x):
    """eV → kcal/mol (also eV/Å → kcal/mol/Å)."""
    return x / KCAL_PER_MOL_IN_EV


def kcal_per_mol_to_ev(x):
    """kcal/mol → eV (also kcal/mol/Å → eV/Å)."""
    return x * KCAL_PER_MOL_IN_EV


def density_g_cm3(total_mass_amu: float, volume_A3: float) -> float:
    """Mass density in g/cm³ of ``total_mass_amu`` (g/mol) in ``volume_A3`` (Å³)."""
    return total_mass_amu / AVOGADRO / (volume_A3 * A3_IN_CM3)


def cubic_edge_A(total_mass_amu: float, density: float) -> float:
    """Edge (Å) of the cube that holds ``total_mass_amu`` (g/mol) at ``density`` (g/cm³)."""
    return (total_mass_amu / AVOGADRO / density / A3_IN_CM3) ** (1.0 / 3.0)


#: 1 eV per particle in kJ/mol (OpenMM's energy unit)
KJ_PER_MOL_IN_EV = 1.0 / (_u.kJ / _u.mol)


def kj_per_mol_to_ev(x):
    """kJ/mol → eV."""
    return x / KJ_PER_MOL_IN_EV
