"""Validation: the same mapped neurons on six simulators (compare.py), one run (pipeline.py), and
how it reads (report.py).  The CLI is ember_neuro.validate."""
