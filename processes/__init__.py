"""Lava Processes and ProcessModels of a mapped neuron array (``ember_neuro.processes``).

``host_bridge``: the host-facing half of the network -- ``GateHostBridge`` (source
and raster sink in one process, the runner's default) or ``WindowSource`` +
``RasterSink`` (the same roles as two processes).  Each has a ``floating_pt``
(float64) and a ``fixed_pt`` (int32) model.  The arithmetic itself is Lava's own
Sparse and LIFReset.

Every module here must stay free of import-time side effects (Lava imports the
modules of a Process's folder while compiling), and this ``__init__`` imports
nothing: Lava's import-time ``set_start_method('fork')`` fails if the start
method is already fixed, so import Lava through
``ember_neuro.backends.lava.import_lava()`` first.
"""
