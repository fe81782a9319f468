"""Backends: ways to run a mapped neuron array (registry.py lists them all).

Importing this package imports nothing: the torch-free ones (numpy_ref, lava,
registry) stay torch-free, and each adapter imports its library when it runs.
"""
