"""Molecular dynamics (stage=md): the MD stage, its engines (ase, torchsim, lammps), the ASE replica driver,
safety checks, neighbour lists with a skin and the LAMMPS input writer."""
