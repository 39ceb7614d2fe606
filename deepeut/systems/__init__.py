"""Systems (stage=build): species from SMILES, liquid boxes, topologies and molecule recognition."""

from deepeut.systems.box import Box, BoxError, build_box, check_box, composition
from deepeut.systems.recognition import MoleculeRecognizer, Recognition
from deepeut.systems.species import SpeciesTemplate, build_template, build_templates
from deepeut.systems.topology import Topology, TopologyError

__all__ = [
    "Box",
    "BoxError",
    "build_box",
    "check_box",
    "composition",
    "MoleculeRecognizer",
    "Recognition",
    "SpeciesTemplate",
    "build_template",
    "build_templates",
    "Topology",
    "TopologyError",
]
