"""Tests of the Earth Engine backend and the gse product (offline)."""
