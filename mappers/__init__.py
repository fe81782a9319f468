"""Mapping trained gate parameters to spiking-neuron parameters (pure functions)."""

from ember_neuro.mappers.description import GateUnit, MappedGates, NeuronArray
from ember_neuro.mappers.lif_gate import MappingOptions, map_gates

__all__ = ["GateUnit", "MappedGates", "NeuronArray", "MappingOptions", "map_gates"]
