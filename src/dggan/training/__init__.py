"""Training one candidate: its config, the WGAN-GP objective, the trainer, the CUDA-graph iteration,
self-describing checkpoints, sampling and sample grids."""
