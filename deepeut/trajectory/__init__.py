"""The ground floor's trajectory IO, used by every stage: deepeut's H5MD files (``h5md``), the readers of
trajectories made elsewhere (``readers``: one interface over H5MD, LAMMPS dumps and extxyz) and the streaming
LAMMPS dump reader (``lammps_dump``)."""
