"""Plumbing shared by every entry point: atomic files, the run layout, progress bars, CLI."""
