"""The Ember models in PyTorch: configurations, the transformer and Liquid Ember families, building
a model from its config, nanoGPT-layout checkpoints, text data and training."""
