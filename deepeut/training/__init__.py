"""Training (stages train, evaluate): nequip + allegro members of an ensemble, the ensemble as an evaluator and
ASE calculator with a Verlet-skin neighbour list, the shipped embedded ensembles, compilation and chunked
evaluation."""
