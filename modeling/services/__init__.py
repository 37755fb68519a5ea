"""Modeling services (all ORM writes of the modeling app), one module per concern."""
