"""Rendering: NSynth-format notes and IRMAS-format ensembles from soundfonts and scores."""
