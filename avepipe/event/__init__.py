"""The event task: which event, if any, each second of a video holds (PSP/CPSP on the cached features).

The same shape as ``avepipe.source``: ``training`` fits a model (``Trainer`` over the run machinery
of ``avepipe.run``), ``evaluation`` scores a checkpoint on a split, ``metrics`` holds the pure-NumPy
figures, ``baselines`` the references a model must beat, and ``api`` the entry points the
``avepipe train`` and ``evaluate`` commands call. The networks are in ``avepipe.models``.
"""
