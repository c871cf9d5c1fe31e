"""Example building: ordering, the next-watch split, candidate-generation examples, tf.data."""
