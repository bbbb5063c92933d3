"""The sound-source task: where in the frame the sound comes from (FNAC on the cached features).

``training`` fits the localiser (self-supervised, no labels), ``metrics`` scores its maps
against boxes (cIoU, AUC, peak-in-box), ``heatmaps`` draws them over frames, and ``api``
holds the entry points the ``avepipe source`` commands and ``Localizer`` call. The network
itself is ``avepipe.models.fnac``.
"""
