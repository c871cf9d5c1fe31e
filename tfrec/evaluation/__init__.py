"""Offline evaluation: P1 next-watch metrics (docs/PROTOCOL.md) and later ranking metrics."""
