"""Reporting: figures, prose, HTML/PDF rendering and the sweep index."""
