"""An example evalgrid plugin (see docs/extending.md): the attack ``linear_leak``, the defense
``laplace`` and the model ``mlp``, declared in :mod:`.entries`. Importing it imports no torch."""

__version__ = "0.1.0"
