"""The defenses a grid can name: post-processing of the client's shared update (quantization,
sparsification, clipping, noise, pruning), DP-SGD inside the local training, and secure
aggregation. Each module holds one implementation, whose ``build(options)`` returns a
:class:`~evalgrid.defenses.base.Defense`; compositions are :mod:`evalgrid.defenses.chain`, the
rules they obey :mod:`evalgrid.defenses.composition`.

The catalogue's entries (name, summary, options, facts) are in :mod:`evalgrid.defenses.entries`
and their options in :mod:`evalgrid.defenses.options`; neither imports torch, and neither does
this package. "none" (no defense) is the empty composition, written by the grid, not an entry.
"""
