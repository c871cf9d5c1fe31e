"""Offline evaluation: P1 next-watch metrics (PROTOCOL.md) and later ranking metrics."""
