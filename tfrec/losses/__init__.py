"""Losses: softmax over the corpus and its sampled estimates (logQ-corrected), weighted BCE."""
