"""Evaluation stage: the models under test (the base and every registered adapter), the evaluation
set as registered benchmarks, and every model's greedy answers to it (`generations`)."""
