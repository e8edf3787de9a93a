"""The ``background`` parameter every image model declares: how its inputs are cut out.

A module of its own (no numpy, scipy or PIL) so that reading a model's card stays cheap; the
cut-out itself is backend.models.common.background, run by ModelAdapter.generate.
"""

from __future__ import annotations

from shared_protocol.messages import ParameterSchema

BACKGROUND_METHODS = ("auto", "alpha", "segmentation", "classical", "none")
BACKGROUND_PARAMETER = ParameterSchema(
    "background",
    "choice",
    "auto",
    "Background removal",
    "auto: the image's alpha, else a segmentation network, else a colour key; none: as is",
    choices=BACKGROUND_METHODS,
)
