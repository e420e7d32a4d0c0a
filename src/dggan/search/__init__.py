"""The DGGAN search: Algorithm 1, its ledger, executors and presets."""
