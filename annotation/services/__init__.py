"""Writes and business rules of the annotation app, one module per concern."""
