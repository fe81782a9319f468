"""Gate kinds and the variants built from them (``registry``): the model side's extension point.

One folder per kind -- ``attention``, ``refractory``, ``membrane``, ``hidden`` -- holds its spec
(numpy: checkpoint keys, records, mapper, calibration; ``__init__``) and its torch module
(``module.py``, loaded only when a model is built).  ``spec`` defines :class:`GateKind`,
:class:`Part` and :class:`Variant`.  Importing this package imports nothing.
"""
