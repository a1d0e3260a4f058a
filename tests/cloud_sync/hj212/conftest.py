"""The HJ 212 test platform, for every test of this folder."""

from tests.fixtures.hj212 import hj212_platform

__all__ = ["hj212_platform"]
