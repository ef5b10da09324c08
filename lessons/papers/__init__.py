"""One module per paper. Each reads top to bottom as the lesson:

docstring (the idea, the equations, the reference) -> ``Config`` dataclass with the paper's
values and their source -> profile overrides (sizes only) -> the paper's operations as pure
functions named after the paper's terms -> modules -> the loss (a dict of named terms) ->
``train(...)`` -> evaluation.

Papers import the core (``lessons.geometry``, ``lessons.render``, ``lessons.data`` ...), never
each other. Import them explicitly: ``from lessons.papers import render_for_cnn``.
"""
