"""Lava Processes and ProcessModels of the gate network (``ember_neuro.processes``).

- ``bridge.GateHostBridge``: payload source + dither generator + raster sink in one
  process (the runner's default: fewer processes, faster Lava CPU steps).
- ``dither.DitherGenerator``, ``host_io.PayloadSource``, ``host_io.SpikeRasterSink``:
  the same roles as separate processes (``LavaGateRunner(..., fused=False)``).

Each has a ``floating_pt`` (float64) and a ``fixed_pt`` (int32) model.  The
arithmetic itself is Lava's own Sparse and LIFReset.  Every module here must stay
free of import-time side effects (Lava imports the modules of a Process's folder
while compiling), and this ``__init__`` imports nothing: Lava's import-time
``set_start_method('fork')`` fails if the start method is already fixed, so
import Lava through ``ember_neuro.lava_backend.import_lava()`` first.
"""
