"""Analyses and figures on top of sampled trajectories."""
