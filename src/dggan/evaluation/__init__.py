"""Judging a finished run: the final model against ProgGAN at equal training and at equal compute, or against
another run (``compare``), and the paper's Tables 1-3 (``tables``).

Above the search: it reads a run's ledger and checkpoints and trains what it needs (the ProgGAN route) through
the search's own runner; nothing in the search imports it.
"""
