"""The run machinery both tasks train through: one run directory, exact resume, one log format.

A run directory holds ``best/`` (the checkpoint of the best validated epoch), ``last/`` (the
latest epoch with everything needed to resume exactly), ``metrics.csv`` and ``curves.png``
(``directory``). ``loop.EpochRun`` is the epoch loop with model selection and resume; each
task's trainer supplies one epoch of training and of validation. ``state`` turns optimiser
and RNG state into safetensors + JSON (no pickles), ``logs`` writes the table and the plot,
``seeding`` makes initialisation and shuffling a function of the seed.
"""
