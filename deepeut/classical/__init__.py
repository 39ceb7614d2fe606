"""Classical equilibration (stage=classical): GAFF2 + AM1-BCC parameters from AmberTools, liquids in OpenMM."""
