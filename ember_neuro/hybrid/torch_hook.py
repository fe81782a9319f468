"""The PyTorch model's gate hook answered by spiking neurons: tensors to numpy and back.

The host computes embeddings, QKV, softmax, CfC cells, MLPs, the leak product, the row
renormalisation and the head (CPU, or CUDA).  Each gate module hands the hook its inputs
(models/hooks.py); :class:`TorchHook` sends them to the path that answers the gate's hook
(hybrid/paths.py: one window of T steps per value on the chosen backend, the fire decoded from
the spike count, n/(N T) or the level set's decode table: docs/mapping.md) and returns the
fire as a tensor on the input's device.  A gate no path answers keeps its trained fire.  Lava
channel payloads: host -> chip graded spikes (round(x / scale 2^bits), int32 messages declared
24-bit), one per host connection and input slot; chip -> host one binary spike per neuron per
step (bit-packed raster per window).
"""

from __future__ import annotations

import numpy as np
import torch

from ember_neuro.hybrid.paths import GatePaths
from ember_neuro.models.hooks import GateModule


class TorchHook:
    """hook(gate, inputs) -> fire with the gates of `paths` on their neurons."""

    def __init__(self, paths: GatePaths):
        self.paths = paths

    def __call__(self, gate: GateModule, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if gate.hook not in self.paths.paths:
            return gate.fire(inputs)
        values = {k: v.detach().to("cpu", torch.float64).numpy() for k, v in inputs.items()}
        fire = self.paths.fire(gate.hook, gate.layer, values)
        ref = inputs["input"]
        return torch.from_numpy(np.ascontiguousarray(fire)).to(device=ref.device, dtype=ref.dtype)
