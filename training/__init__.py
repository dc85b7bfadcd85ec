"""Learners against fixed others, action encodings and distance-to-prediction metrics."""
