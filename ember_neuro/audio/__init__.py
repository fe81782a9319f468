"""The keyword-spotting data layer: log-mel features (whole clips and a stream), wav files, the
Speech Commands v2 layout and the project's own espeak-ng keyword set.

numpy/scipy/stdlib only at import time (no torch): it also runs in the torch-free bundle on
Python 3.10; librosa is imported lazily, and only to build the mel filterbank.
"""
