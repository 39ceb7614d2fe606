"""Trajectory readers shared by every stage (LAMMPS dump here; H5MD and extxyz in deepeut.md for now)."""
