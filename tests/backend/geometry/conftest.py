"""Shared analytic meshes for the geometry tests (built once per session, kept small)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.analytic_meshes import (
    analytic_color,
    blob_field,
    marching_cubes_mesh,
    sphere_field,
)


@pytest.fixture(scope="session")
def sphere_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A watertight marching-cubes sphere of radius 0.6: ~30k faces."""
    return marching_cubes_mesh(sphere_field, 96)


@pytest.fixture(scope="session")
def blob_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A watertight blobby union of five spheres: ~40k faces."""
    return marching_cubes_mesh(blob_field, 80)


@pytest.fixture(scope="session")
def blob_colors(blob_mesh) -> np.ndarray:
    return analytic_color(blob_mesh[0])
