"""Trained gate parameters -> a saved, versioned spiking network (numpy only, no torch).

- ``network``: the contract every backend consumes (groups, connections, layouts);
- ``loihi``: Loihi 2 fixed-point arithmetic, one named function per decision;
- ``gate``: the dithered sigmoid gate; ``registry``: variant -> mapper;
- ``params``: the checkpoint keys a mapper reads; ``store``: save_mapped / load_mapped.
"""

from ember_neuro.mappers.gate import map_gates
from ember_neuro.mappers.network import (
    Arithmetic,
    Connection,
    GateUnit,
    MappedNetwork,
    MappingOptions,
    NeuronArray,
    NeuronGroup,
    Synapses,
    gate_counts,
)
from ember_neuro.mappers.registry import MappingError, map_variant
from ember_neuro.mappers.store import MappedFileError, load_mapped, save_mapped

__all__ = ["Arithmetic", "Connection", "GateUnit", "MappedNetwork", "MappingOptions", "NeuronArray",
           "NeuronGroup", "Synapses", "gate_counts", "map_gates", "MappingError", "map_variant",
           "MappedFileError", "load_mapped", "save_mapped"]
