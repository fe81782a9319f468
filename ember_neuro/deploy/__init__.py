"""From a trained checkpoint to a deployed gate network: calibration, mapping and how faithful it is,
the window a budget affords, and what the network costs on Loihi 2."""
