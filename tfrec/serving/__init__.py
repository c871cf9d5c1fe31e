"""Serving: retrieval indexes (exact brute force, ScaNN) and SavedModel export for TF Serving."""
