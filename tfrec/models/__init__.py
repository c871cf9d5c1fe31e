"""Models: the popularity baseline, candidate generation and ranking."""
