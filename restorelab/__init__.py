"""restorelab: restore AI-generated music and judge the restorers by ear."""

__version__ = "0.1.0"
