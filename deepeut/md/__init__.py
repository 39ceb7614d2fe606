"""Molecular dynamics (stage=md): the MD stage, its engines (ase, torchsim, lammps), the ASE replica driver,
safety checks and the LAMMPS input writer."""
