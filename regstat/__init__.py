"""regstat: where a container registry's storage goes, and what can be deleted safely."""

__version__ = "0.1.0"
