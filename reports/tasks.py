"""Celery tasks of the reports app."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="reports.tasks.cube_refresh")
def cube_refresh_task() -> dict:
    """Rebuild the report aggregates if the data changed (beat, every REPORTS_CUBE_SECONDS, and the page)."""
    from reports.cube import cube_refresh

    state = cube_refresh()
    return {"built_at": state.built_at.isoformat() if state.built_at else "", "seconds": state.seconds,
            "cells": state.cells, "pairs": state.pairs}
