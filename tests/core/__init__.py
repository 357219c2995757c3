"""Tests of the pure core, ``metallb_core``."""
