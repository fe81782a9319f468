"""ember-neuro: deploy trained Ember models (learned LIF gates) onto Loihi-style
neuromorphic frameworks -- Lava (float and Loihi 2 fixed point), checked against
snnTorch and Norse."""

__version__ = "0.1.0"
