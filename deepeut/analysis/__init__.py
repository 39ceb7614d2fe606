"""Trajectory analysis (stage=analysis): RDFs and coordination numbers, transport (D, t+, σ), lifetimes, VCCFs,
CDFs and SDFs, their convergence checks, Tables I–III and the figures."""
