"""Trained parameters -> a saved, versioned spiking network (numpy only, no torch).

- ``network``: the contract every backend consumes (groups, connections, layouts, addressing);
- ``loihi``: Loihi 2 fixed-point arithmetic, one named function per decision;
- ``gate``: the dithered sigmoid gate every gate kind maps through (ember_neuro/kinds/);
- ``params``: reading a checkpoint's raw gate arrays; ``store``: save_mapped / load_mapped.
"""

from ember_neuro.mappers.gate import map_gates
from ember_neuro.mappers.network import (
    Addressing,
    Arithmetic,
    Connection,
    GateUnit,
    MappedNetwork,
    MappingError,
    MappingOptions,
    NeuronArray,
    NeuronGroup,
    Synapses,
    gate_counts,
)
from ember_neuro.mappers.store import MappedFileError, load_mapped, save_mapped

__all__ = ["Addressing", "Arithmetic", "Connection", "GateUnit", "MappedNetwork", "MappingError",
           "MappingOptions", "NeuronArray", "NeuronGroup", "Synapses", "gate_counts", "map_gates",
           "MappedFileError", "load_mapped", "save_mapped"]
