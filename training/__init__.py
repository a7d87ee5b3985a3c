"""Training, evaluation, visualisation and benchmarks for glom_tf models."""
