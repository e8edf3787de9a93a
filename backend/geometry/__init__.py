"""Geometry pipeline: pure functions over arrays that turn raw model output into an asset."""
