"""Every numeric tolerance of the geometry pipeline, named once.

Lengths are relative to the bounding-box diagonal of the mesh being processed (so the same
values work for a 2 cm ring and a 20 m house); areas relative to the diagonal squared. Pixel
figures are at the output texture size.
"""

from __future__ import annotations

# clean.py
WELD_DISTANCE = 1e-6  # vertices closer than this (x diagonal) are one vertex
ZERO_AREA = 1e-14  # faces with area below this (x diagonal^2) are degenerate
FLOATER_FRACTION = 0.01  # pieces with fewer faces than this share of the mesh are floaters

# decimate.py
DECIMATE_FACE_TOLERANCE = 0.02  # the face count reached is within 2 % of the target
FLIP_COS = 0.2  # a collapse may not turn a face normal by more than acos(0.2) (~78 deg)
MIN_FACE_QUALITY = 0.02  # and may not create a sliver (4*sqrt3*area / sum edge^2 below this)
BOUNDARY_WEIGHT = 100.0  # quadric weight of the planes that pin open boundaries
SWEEP_UNTIL = 4.0  # fast threshold sweeps run down to this multiple of the target, then greedy
PARALLEL_SWEEP_FACES = 200_000  # from this size the sweeps first run on slabs in parallel threads
PARALLEL_PART_FACES = 100_000  # one slab per this many faces (the input's size, not the cores):
# each slab has its own ring lists and scratch arrays; at 800k faces 7 slabs cost 0.25 CPU-s
# more than 2, 15 slabs 0.6 s more (so they pay from ~4 cores on)
PARALLEL_MAX_PARTS = 32  # and at most this many slabs
# The slabs sweep, each to its share of this multiple of the target. A share is counted in faces
# whatever the slab's error, so sweeping lower in slabs (or a greedy per slab to a face share:
# max error 0.026 -> 0.22 % at 16 slabs of an 800k-face blob) loses accuracy.
PARALLEL_SWEEP_UNTIL = 8.0
# Then greedy rounds in the slabs, all bounded by one collapse cost per round (so no slab spends
# a face share it does not need), down to this multiple of the target; the last stretch is the
# sequential greedy's, across every cut.
PARALLEL_GREEDY_UNTIL = 1.3
PARALLEL_GREEDY_ROUNDS = 8
SWEEP_QUANTILE = 0.4  # each sweep collapses edges cheaper than this quantile of face errors

# inner_shells.py
VISIBILITY_DIRECTIONS = 48  # orthographic views spread over the sphere decide what is visible
VISIBILITY_PIXELS = 512  # each view's depth image is this many pixels across the bounding sphere

# uv.py
CHART_ANGLE_COS = 0.5  # a face joins a chart whose axis is within acos(0.5) = 60 deg of it
UV_PADDING_PX = 4  # empty texels kept around every chart, at the output texture size
MIN_CHART_FACES_MERGE = 4  # charts this small are folded into a neighbour when possible

# bake.py
DILATE_PX = 16  # texels filled past chart borders, so mip-maps and filtering never reach black
FIELD_CHUNK = 262_144  # points per call of a model's colour / material field

# views.py (painted views; Hunyuan3D-Paint's bake settings)
VIEW_DEPTH_TOLERANCE = 0.008  # visible if within this (x diagonal) of the view's nearest surface
VIEW_DEPTH_PIXELS = 1024  # depth maps are rendered at least this size (longer side)
VIEW_MAX_ANGLE_DEG = 75.0  # a view colours surfaces facing it at less than this angle
VIEW_FACING_EXPONENT = 4  # a view's weight grows as cos(angle) to this power
VIEW_FILL_NEIGHBOURS = 4  # points no view sees: inverse-distance mean of this many seen points
VIEW_FILL_TREE_POINTS = 500_000  # at most this many seen points are searched (evenly strided)

# pipeline quality figures
QUALITY_SAMPLES = 10_000  # surface samples each way for the surface distance (as the reference)
