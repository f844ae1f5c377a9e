"""The model files shipped with instrec and their manifest (read by instrec.model.registry)."""
