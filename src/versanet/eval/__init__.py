"""Evaluation: retrieval metrics and linear probes."""
