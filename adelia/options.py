"""The vocabularies of the inference options, shared by the language front end (``.adl``
checks) and the runtime (R-INLA's ``control.inla`` names)."""

INT_STRATEGIES = ("auto", "grid", "ccd", "eb", "nuts")
STRATEGIES = ("auto", "gaussian", "simplified.laplace", "adaptive", "laplace")
SOLVERS = ("auto", "dense", "sparse", "bta")
