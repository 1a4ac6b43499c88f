"""Flax modules only: MLPs, the critic ensemble, time embeddings and the policy networks."""
