"""Export a trained Ember checkpoint for deployment.

    python -m ember_neuro.export onnx CKPT --out DIR [--json] [--force]
        The host part as ONNX graphs split at the gates (opset 17, dynamic sequence length,
        KV-cache / CfC-state inputs and outputs; an audio model: log-mel features of whole
        clips in, class logits out), checked in onnxruntime against PyTorch on validation
        text (clips): max |delta logits| is reported (bar: 1e-4).

    python -m ember_neuro.export inrc CKPT --out BUNDLE [-T 32] [--neurons-per-gate 1] [--force] [--json]
        The INRC submission bundle: saved mapping, ONNX graphs, vocabulary, golden traces
        recorded on Lava's bit-accurate simulator, verify.py, generate.py, resources.json,
        the validate report, SHA256SUMS and a reviewer README (export/inrc.py).  Runs with
        numpy, Lava and onnxruntime on Python 3.10 (requirements.txt inside).  An audio
        model's bundle has classify.py (wav files -> classes, no torch, no librosa), its
        labels and mel filterbank, golden windows from validation clips and per-inference
        resources instead.

Exit status: 0 done; 2 bad input (e.g. the output exists without --force, a variant
without an LIF gate); 3 a backend this machine cannot run; 4 a runtime fault.
"""

from __future__ import annotations

import argparse
import sys

from ember_neuro import cli
from ember_neuro.backends.chip_window import BRIDGES


def build_parser() -> argparse.ArgumentParser:
    ap = cli.parser("ember_neuro.export", __doc__)
    sub = ap.add_subparsers(dest="command", required=True, metavar="{onnx,inrc}")
    onnx = sub.add_parser("onnx", help="host graphs as ONNX, checked against PyTorch")
    inrc = sub.add_parser("inrc", help="the INRC bundle (Lava gate network + ONNX host + golden traces)")
    for p in (onnx, inrc):
        p.add_argument("checkpoint")
        p.add_argument("--out", required=True, help="output folder (refused if it exists, unless --force)")
        p.add_argument("--force", action="store_true", help="replace --out if it exists")
        p.add_argument("--data", default=None,
                       help="text file for validation windows (default: Shakespeare); an audio model: a "
                            "Speech Commands v2 folder (default: the project's keyword set)")
        cli.add_json_option(p)
        cli.add_threads_option(p)
    cli.add_window_options(inrc)
    inrc.add_argument("--temporal", default=None, choices=("rate", "hard"),
                      help="temporal-lif's membrane: rate or hard (default: the checkpoint's trained "
                           "form -- hard for a model trained with --spike hard, rate otherwise)")
    inrc.add_argument("--bridge", default=None, choices=BRIDGES,
                      help="the gate network the bundle records and prices: chip-side (one host<->chip "
                           "message each way per layer and token; N*T + R + 1 neurons per gate value) or "
                           "per-step (the host feeds every window step; N neurons per value).  Default: "
                           "chip-side where it fits one Loihi 2 chip, else per-step (said on stderr); at "
                           "T = 1 per-step, one step per window too")
    inrc.add_argument("--tokens", type=int, default=16, help="greedy tokens of the golden recording (16)")
    inrc.add_argument("--no-report", action="store_true", help="skip the validate report (faster)")
    inrc.add_argument("--timeout", type=float, default=120.0, help="seconds before a stalled Lava run fails")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = not args.json and sys.stderr.isatty()

    def step(name: str) -> None:
        if progress:
            print(f"  {name} ...", file=sys.stderr)

    def export(a: argparse.Namespace) -> dict:
        cli.torch_threads(a.threads)
        if a.command == "onnx":
            from ember_neuro.export.onnx import export_onnx

            return export_onnx(a.checkpoint, a.out, a.force, a.data)
        from ember_neuro.export.inrc import BundleRequest, build_bundle

        return build_bundle(cli.from_args(BundleRequest, a, report=not a.no_report), step)

    def report(result: dict) -> None:
        if args.command == "onnx":
            over = f"{result['clips']} clips" if "clips" in result else f"{result['tokens']} tokens"
            print(f"wrote {result['out']}: {len(result['files'])} graphs (opset {result['opset']}), "
                  f"max |delta logits| vs PyTorch {result['max_abs_logit_diff']:.2e} over {over}")
            return
        r = result["resources"]
        if "golden_clips" in result:
            ran = "golden clips " + ", ".join(f"{c['label']} -> {c['predicted']}"
                                              for c in result["golden_clips"])
        else:
            ran = f"greedy {result['prompt']!r} -> {result['greedy_text']!r}"
        print(f"wrote {result['out']} ({result['bytes'] / 1e6:.1f} MB, {result['files']} files): "
              f"{r['neurons']:,} neurons, {r['synapses']:,} synapses, {r['cores']} cores; golden "
              f"{result['golden_windows']}; {ran}")
        for warning in result.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        print(f"check it: cd {result['out']} && python verify.py")

    return cli.run_and_report(export, args, "\ninterrupted: nothing was written", report)


if __name__ == "__main__":
    sys.exit(main())
