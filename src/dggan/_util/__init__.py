"""Small utilities with no idea of their own: atomic files, thread defaults, typed settings, durations,
lazy exports, TensorBoard writers."""
