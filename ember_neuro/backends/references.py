"""snnTorch and Norse: independent simulators of the float neuron array (validation backends).

Why: a Lava result is only trustworthy if simulators written by other people
produce the *same spikes* from the same :class:`NeuronArray`.  Both get the
synaptic input a_in of every step from :func:`ember_neuro.backends.numpy_ref.synaptic_input`
(float64, connection order, the operations Lava performs) and run their own LIF:

* snnTorch ``Leaky``: mem = beta*mem + input, spike iff mem - threshold > 0 (strict),
  reset_mechanism="zero".  beta = 1 - dv, input = a_in + bias.  No separate current,
  so du must be 1.
* Norse ``LIFCell`` (lif_feed_forward_step): i += input; v += dt*tau_mem_inv*((v_leak - v) + i);
  spike iff v - v_th > 0 (strict heaviside); v <- v_reset; i -= dt*tau_syn_inv*i.
  dt = 1, tau_syn_inv = du, tau_mem_inv = dv, input = a_in/dv, v_leak = bias/dv.
  Norse's default state starts v at v_leak, so an explicit zero state is passed.

With du = dv = 1 both compute v = fl(a_in + bias), as Lava does, so in float64
they agree bit for bit (docs/validation.md has the recipe per library).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np

from ember_neuro.backends.numpy_ref import synaptic_input
from ember_neuro.mappers.network import NeuronArray

INSTALL_HINT = (
    "install the reference extra: pip install 'ember-neuro[ref]' "
    "and pip install --no-deps norse==1.1.0"
)


def require(module: str) -> Any:
    """Import an optional reference simulator, or fail with the install command.

    Norse 1.1.0 calls ``torch.jit.script`` at import, deprecated in recent torch;
    that DeprecationWarning is silenced here (harmless, not ours to fix).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{module} is not installed; {INSTALL_HINT}") from exc


def _inputs(array: NeuronArray, x: np.ndarray, dtype: Any) -> tuple[Any, Any, Any]:
    """(torch, a_in (T, M), bias (M,)) for one window, in `dtype` (float64 unless given)."""
    if array.fixed:
        raise ValueError("reference simulators run float parameters: use layout(..., fixed=False)")
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (array.payload_width,):
        raise ValueError(f"x must have shape ({array.payload_width},), got {x.shape}")
    torch = require("torch")
    dtype = dtype or torch.float64
    a_in = torch.as_tensor(synaptic_input(array, x)[0]).to(dtype)
    return torch, a_in, torch.as_tensor(np.asarray(array.bias_mant, np.float64)).to(dtype)


def run_snntorch(array: NeuronArray, x: np.ndarray, dtype: Any = None) -> np.ndarray:
    """Spikes (T, M) of snnTorch's ``Leaky`` driven by the Lava drive (float64 unless dtype)."""
    if array.du != 1:
        raise ValueError("snnTorch Leaky has no synaptic current state: du must be 1")
    snn = require("snntorch")
    torch, a_in, bias = _inputs(array, x, dtype)
    # tensors, not floats: a float threshold would be stored as float32
    lif = snn.Leaky(beta=torch.as_tensor(1.0 - float(array.dv), dtype=a_in.dtype),
                    threshold=torch.as_tensor(float(array.vth), dtype=a_in.dtype),
                    reset_mechanism="zero", reset_delay=False, surrogate_disable=True)
    mem = torch.zeros(array.size, dtype=a_in.dtype)
    out = []
    with torch.no_grad():
        for t in range(array.timesteps):
            spk, mem = lif(a_in[t] + bias, mem)
            out.append(spk.bool())
    return torch.stack(out).numpy()


def run_norse(array: NeuronArray, x: np.ndarray, dtype: Any = None) -> np.ndarray:
    """Spikes (T, M) of Norse's ``LIFCell`` (current + voltage), dt = 1, tau_inv = du, dv."""
    norse = require("norse.torch")
    torch, a_in, bias = _inputs(array, x, dtype)
    dv = torch.as_tensor(float(array.dv), dtype=a_in.dtype)
    p = norse.LIFParameters(
        tau_syn_inv=torch.as_tensor(float(array.du), dtype=a_in.dtype),
        tau_mem_inv=dv,
        v_leak=bias / dv,
        v_th=torch.as_tensor(float(array.vth), dtype=a_in.dtype),
        v_reset=torch.zeros((), dtype=a_in.dtype),
        method="heaviside",
    )
    cell = norse.LIFCell(p, dt=1.0)
    zero = torch.zeros(array.size, dtype=a_in.dtype)
    state = norse.LIFFeedForwardState(v=zero, i=zero)
    out = []
    with torch.no_grad():
        for t in range(array.timesteps):
            z, state = cell(a_in[t] / dv, state)
            out.append(z.bool())
    return torch.stack(out).numpy()
