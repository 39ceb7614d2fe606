"""deepeut: machine-learned molecular dynamics of deep eutectic electrolytes.

One sub-package per workflow stage (systems, labeling, data, training, active_learning, md, analysis);
stages exchange data through files with a documented schema (see README.md).
Units everywhere: Å, eV, ps, amu, e (elementary charge); kcal/mol only where the paper uses it.
"""

__version__ = "0.1.0"
