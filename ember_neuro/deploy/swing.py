"""How far each learned LIF gate is from pass-through: its attenuation swing.

For one gate unit with threshold theta, leak = sigmoid(leak_raw) and
k = softplus(steepness_raw) the multiplier applied to an input x is

    m(x) = leak + (1 - leak) * fire(x),   fire(x) = sigmoid(k (|x| - theta)),

so the largest relative attenuation it can express over an input range
[lo, hi] of |x| is (k > 0, so fire is increasing in |x|)

    swing = (1 - leak) * (fire(hi) - fire(lo)).

A pass-through gate has swing ~ 0; swing 0.25 means that inputs at one end
of the range are scaled by at least 0.25 less than inputs at the other end
(before renormalisation).

* Attention variants (lif-fixed, lif-learnable, lif-refractory, temporal-lif):
  one unit = one head of a layer, range |p| in [0, 1] (analytic, no data).
  For lif-refractory the swing uses the head's base theta (the load terms
  only raise the effective threshold; they are reported separately by
  `inspect`).  temporal-lif's per-layer membrane is not a unit here.
* cfc-lif: one unit = one neuron of a layer; the range is the observed |h|
  of that layer's CfC output (before the gate) on validation batches of the
  checkpoint's own data, pooled over the layer's neurons, from the `q_lo` to
  the `q_hi` quantile (default 0.1 % and 99.9 %).

`unit_swings(model, data)` returns one record per unit; `summarise` turns them
into the numbers docs/strong_gates.md reports.  Intended for `inspect --json`.
"""

from __future__ import annotations

import torch

from ember_neuro import gates
from ember_neuro.kinds import registry

DEFAULT_BAR = 0.25
Q_LO, Q_HI = 0.001, 0.999
MAX_QUANTILE_SAMPLES = 1 << 20  # torch.quantile's input limit is 16M; subsample above this


def observed_ranges(model, hook: str, data, n_batches: int = 8, batch_size: int = 12, seed: int = 0,
                    q_lo: float = Q_LO, q_hi: float = Q_HI) -> dict[int, tuple[float, float]]:
    """Per layer: (q_lo, q_hi) quantiles of |input| at the gates of `hook` (e.g. Liquid Ember's
    pre-gate CfC output) over `n_batches` deterministic validation batches (data.val_batches, seed)."""
    from ember_neuro.deploy.calibrate import observe

    seen: dict[int, list[torch.Tensor]] = {}

    def visit(gate, inputs) -> None:
        if gate.hook == hook:
            seen.setdefault(gate.layer, []).append(inputs["input"].detach().abs().reshape(-1))

    was_training = model.training
    model.eval()
    observe(model, data.val_batches(n_batches, batch_size, model.config.block_size, seed=seed), visit)
    model.train(was_training)
    out = {}
    g = torch.Generator().manual_seed(seed)
    for layer, parts in sorted(seen.items()):
        vals = torch.cat(parts).double()
        if vals.numel() > MAX_QUANTILE_SAMPLES:
            vals = vals[torch.randperm(vals.numel(), generator=g)[:MAX_QUANTILE_SAMPLES]]
        lo, hi = torch.quantile(vals, torch.tensor([q_lo, q_hi], dtype=torch.float64)).tolist()
        out[layer] = (lo, hi)
    return out


def unit_swings(model, data=None, n_batches: int = 8, batch_size: int = 12, seed: int = 0,
                q_lo: float = Q_LO, q_hi: float = Q_HI) -> list[dict]:
    """One record per gate unit of every kind with a swing range: layer, head (its index in the
    layer), theta, leak, k, lo, hi (the |input| range used), fire_lo, fire_hi, swing.

    A kind whose range is "unit" needs no data ([0, 1]); an "observed" one (Liquid Ember's |h|)
    needs `data` (a CharData encoded with the checkpoint's vocabulary)."""
    from ember_neuro.deploy.mapping import gate_params

    variant = registry.get(model.config.variant)
    params = gate_params(model)
    out = []
    for kind in variant.kinds:
        if kind.swing_range is None:
            continue
        ranges = None
        if kind.swing_range == "observed":
            if data is None:
                raise ValueError(f"{variant.name} swings need validation data for the |input| range")
            ranges = observed_ranges(model, kind.hook, data, n_batches, batch_size, seed, q_lo, q_hi)
        for r in kind.records(params, model.config.n_layer):
            lo, hi = (0.0, 1.0) if ranges is None else ranges[r["layer"]]
            f_lo = float(gates.fire_curve_np(lo, r["theta"], r["k"]))
            f_hi = float(gates.fire_curve_np(hi, r["theta"], r["k"]))
            out.append({"kind": kind.name, "layer": r["layer"], "head": r["head"], "theta": r["theta"],
                        "leak": r["leak"],
                        "k": r["k"], "lo": lo, "hi": hi, "fire_lo": f_lo, "fire_hi": f_hi,
                        "swing": (1.0 - r["leak"]) * (f_hi - f_lo)})
    return out


def needs_data(model) -> bool:
    """Whether the swing of this model's units needs validation text (an observed input range)."""
    return any(k.swing_range == "observed" for k in registry.get(model.config.variant).kinds)


@torch.no_grad()
def causal_check(model, data, n_batches: int = 4, batch_size: int = 12, seed: int = 0) -> dict:
    """Validation loss of whole-sequence evaluation vs prefix-only evaluation (each
    position predicted from its prefix alone, as generation does).  A causal model gives
    the same number twice.  lif-refractory's column load averages over *all* queries
    (gates.refractory_theta), so with selective gates training can read future tokens
    through it: then "whole" is far below "prefix" and the training val loss is invalid."""
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    whole = prefix = 0.0
    n = 0
    for x, y in data.val_batches(n_batches, batch_size, model.config.block_size, seed=seed):
        logits, _ = model(x)
        whole += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1),
                                 reduction="sum").item()
        for t in range(x.shape[1]):
            lt, _ = model(x[:, :t + 1])
            prefix += F.cross_entropy(lt[:, -1], y[:, t], reduction="sum").item()
        n += y.numel()
    model.train(was_training)
    return {"whole_sequence_loss": whole / n, "prefix_only_loss": prefix / n,
            "batches": n_batches, "batch_size": batch_size}


def _quantiles(vals: list[float], qs=(0.0, 0.25, 0.5, 0.75, 1.0)) -> list[float]:
    t = torch.tensor(vals, dtype=torch.float64)
    return [float(v) for v in torch.quantile(t, torch.tensor(qs, dtype=torch.float64))]


def summarise(units: list[dict], bar: float = DEFAULT_BAR) -> dict:
    """Fraction of units with swing >= bar, the swing distribution (min/q25/median/q75/max)
    and the theta/leak/k ranges."""
    if not units:
        return {"units": 0}
    sw = [u["swing"] for u in units]
    strong = sum(s >= bar for s in sw)
    out = {"units": len(units), "bar": bar, "strong": strong, "strong_fraction": strong / len(units),
           "swing_quantiles": _quantiles(sw)}
    for key in ("theta", "leak", "k"):
        vals = [u[key] for u in units]
        out[f"{key}_range"] = [min(vals), max(vals)]
    layers = sorted({u["layer"] for u in units})
    out["per_layer_strong_fraction"] = {
        int(li): sum(u["swing"] >= bar for u in units if u["layer"] == li)
        / sum(1 for u in units if u["layer"] == li) for li in layers}
    if units[0]["hi"] != 1.0 or units[0]["lo"] != 0.0:
        out["ranges"] = {int(li): [next(u["lo"] for u in units if u["layer"] == li),
                                   next(u["hi"] for u in units if u["layer"] == li)]
                         for li in layers}
    return out


def checkpoint_swings(path, data_path: str | None = None, n_batches: int = 8,
                      batch_size: int = 12, seed: int = 0, q_lo: float = Q_LO,
                      q_hi: float = Q_HI) -> tuple[object, list[dict]]:
    """Load a checkpoint and compute its unit swings (validation data only for cfc-lif)."""
    from ember_neuro.models.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    data = None
    if needs_data(ck.model):
        from ember_neuro.models.data import data_for

        data = data_for(ck, data_path)
    return ck, unit_swings(ck.model, data, n_batches, batch_size, seed, q_lo, q_hi)


def format_text(ck, units: list[dict], summary: dict) -> str:
    if not units:
        return f"{ck.path}: variant {ck.config.variant} has no LIF gate"
    qs = summary["swing_quantiles"]
    lines = [
        f"{ck.path}: variant {ck.config.variant}, val loss {ck.best_val_loss:.4f}",
        f"units {summary['units']}, swing >= {summary['bar']}: {summary['strong']} "
        f"({100 * summary['strong_fraction']:.1f} %)",
        "swing min/q25/median/q75/max: " + " / ".join(f"{q:.3f}" for q in qs),
    ]
    for key in ("theta", "leak", "k"):
        lo, hi = summary[f"{key}_range"]
        lines.append(f"{key} range [{lo:.3f}, {hi:.3f}]")
    if "ranges" in summary:
        lines.append(f"observed |h| range per layer (q{Q_LO:.1%}..q{Q_HI:.1%}): " + "; ".join(
            f"L{li} [{lo:.3g}, {hi:.3g}]" for li, (lo, hi) in summary["ranges"].items()))
    else:
        lines.append(f"{'unit':>6} {'theta':>7} {'leak':>6} {'k':>7} {'swing':>6}")
        lines += [f"  L{u['layer']}H{u['head']} {u['theta']:7.3f} {u['leak']:6.3f} "
                  f"{u['k']:7.3f} {u['swing']:6.3f}" for u in units]
    return "\n".join(lines)


