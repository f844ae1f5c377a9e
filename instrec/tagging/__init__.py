"""The tagger: audio in, the instruments that lead it out.

`load_model(path)` gives a `Tagger` whose `predict` returns a `Prediction`. This layer
depends only on audio, labels and (for .pt files, imported when one is loaded) the model;
it never imports training or rendering, and no module here imports torch on import.
"""

from instrec.tagging.tagger import Prediction, Tagger, load_model

__all__ = ["Prediction", "Tagger", "load_model"]
