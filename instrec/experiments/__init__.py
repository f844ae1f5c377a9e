"""The jobs on top: the paper's experiment grid (`instrec reproduce`) and the demo."""
