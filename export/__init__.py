"""Deployment artifacts for glom_tf models: SavedModel, TFLite, and prediction on files."""
