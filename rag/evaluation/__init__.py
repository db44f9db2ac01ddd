"""Measuring retrieval and answers: datasets, metrics and the runners that score a built index."""
