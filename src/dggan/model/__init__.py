"""The architecture: the genome (the single source of truth), growth actions, ProgGAN's layers, the networks
built from a genome, weight inheritance by name, and the memory estimate."""
