"""Lets the guide's scripts run from a source checkout where clsbench is not installed."""
import os
import sys

try:
    import clsbench  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
