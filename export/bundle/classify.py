"""Keyword spotting from this bundle, without torch or librosa: wav files in, each file's class out.
The host graphs run in onnxruntime, every gate on spiking neurons in Lava (or the numpy reference
of the same fixed-point arithmetic).

    python classify.py a.wav b.wav                      label and probability per file
    python classify.py golden/clips/*.wav --json        one JSON object (a record per file)
    python classify.py a.wav --backend numpy            the gates on the numpy reference

Each file must be 16-bit (or 8/32-bit) PCM mono at the model's sample rate (model/labels.json);
a shorter clip is zero-padded to the model's length, a longer one cropped (a warning says so).
Features: the package's log-mel front end (lib/ember_neuro/audio/features.py) with the mel
filterbank stored at export (model/mel_basis.npy), so they equal the package's bit for bit.
All files go through the model as one batch, one gate call per layer, as `python -m
ember_neuro.run CKPT --backend lava-sim --wav a.wav --wav b.wav` does: with the bundle's T, N and
levels (bundle.json) the classes are the package's.

Exit status: 0 done; 2 bad input (a wav file that cannot be used: one line naming it);
3 Lava or onnxruntime is not installed; 4 a Lava run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read_features(paths: list[str], labels_meta: dict) -> object:
    """Log-mel features (n, frames, n_mels) of the files; a bad file: AudioError, one line naming it."""
    import numpy as np

    from ember_neuro.audio.features import FeatureSpec, log_mel
    from ember_neuro.audio.wav import read_clip

    spec = FeatureSpec(**labels_meta["features"])
    basis = np.load(HERE / "model" / "mel_basis.npy", allow_pickle=False)
    waves = [read_clip(p, spec) for p in paths]  # every file checked before Lava starts
    return np.stack([log_mel(w, spec, basis) for w in waves])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python classify.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wavs", nargs="+", metavar="WAV", help="wav files to classify (one batch)")
    ap.add_argument("--backend", default="lava-sim", choices=("lava-sim", "numpy", "loihi2"),
                    help="where the gates run: Lava's bit-accurate simulation (default), the numpy "
                         "reference, or Loihi 2 (INRC)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds before a stalled Lava exchange fails")
    ap.add_argument("--json", action="store_true", help="print one JSON object with a `clips` list")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE / "lib"))
    from ember_neuro.cli import bundle_runtime_missing

    missing = bundle_runtime_missing(args.backend)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 3
    from ember_neuro.audio.decisions import decisions
    from ember_neuro.cli import run_and_report
    from ember_neuro.hybrid.onnx_host import OnnxHost
    from ember_neuro.hybrid.paths import GatePaths
    from ember_neuro.mappers import load_mapped

    def classify(a: argparse.Namespace) -> dict:
        meta = json.loads((HERE / "model" / "labels.json").read_text())
        info = json.loads((HERE / "bundle.json").read_text())
        paths = list(a.wavs)
        x = read_features(paths, meta)
        net = load_mapped(HERE / "model" / "mapped.npz")
        # as the package's run opens them: the network fit_bridge picks, said on stderr
        with GatePaths.for_run(net, a.backend, len(paths) * meta["block_size"], a.timeout) as gates:
            host = OnnxHost(HERE / "model" / "onnx", gates)
            t0 = time.perf_counter()
            logits = host.classify(x)
            secs = time.perf_counter() - t0
        return {"clips": decisions(logits, meta["labels"], paths), "backend": a.backend,
                "variant": net.variant, "timesteps": info["timesteps"],
                "neurons_per_gate": info["neurons_per_gate"], "levels": info["levels"],
                "clips_per_s": len(paths) / secs if secs else None}

    def report(result: dict) -> None:
        for c in result["clips"]:
            print(f"{c['wav']}: {c['label']} ({c['probability']:.3f})")
        print(f"[{result['backend']} T={result['timesteps']} N={result['neurons_per_gate']}: "
              f"{len(result['clips'])} clips, {result['clips_per_s']:.2f} clips/s]", file=sys.stderr)

    return run_and_report(classify, args, "\ninterrupted: Lava stopped", report)


if __name__ == "__main__":
    sys.exit(main())
