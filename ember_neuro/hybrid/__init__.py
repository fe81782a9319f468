"""Hybrid inference: the host model with every gate's fire on spiking neurons.

``paths`` (numpy: gate values in, decoded fire out), ``decoding`` (the generation loop),
``onnx_host`` (the exported host graphs in onnxruntime) and ``golden`` (recorded gate windows)
are torch-free and ship in the INRC bundle; ``torch_hook`` and ``session`` drive the PyTorch model.
Importing this package imports nothing.
"""
