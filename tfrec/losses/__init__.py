"""Losses: softmax over the corpus and its sampled estimates (logQ-corrected), weighted BCE.

softmax/            one module per candidate-generation loss (full, sampled, in_batch, mixed)
label_probability/  one module per source of the label distribution P (counts, streaming)
registry.py         config name -> class for both (no TensorFlow import)
corrections.py      the logQ correction and accidental-hit removal, as Keras layers
samplers.py         proposals Q and the negative sampler
weighted_logistic.py  the ranker's watch-time-weighted logistic loss
"""
