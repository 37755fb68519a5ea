"""What a generation may do in each status: one table, one guard (the services and the page read it).

    queued → training → evaluating → ready ⇄ exporting;  ready/retired → promoted → retired
    queued/training/evaluating → cancelled;  any running status → failed;  failed/cancelled/stale → queued (resume)
"""

from __future__ import annotations

from modeling.models import ExportState, ModelGeneration

Status = ModelGeneration.Status

# A worker owns the row: the generation page keeps polling, the flywheel starts nothing new.
ACTIVE = frozenset({Status.QUEUED, Status.TRAINING, Status.EVALUATING, Status.EXPORTING})
# A training task that finds its row here does nothing (a redelivered message after the end).
FINISHED = frozenset({Status.READY, Status.PROMOTED, Status.RETIRED, Status.FAILED, Status.CANCELLED})
EXPORT_DONE = frozenset({ExportState.PASSED, ExportState.FAILED})

# action → (the statuses it is allowed from, what the refusal says)
ALLOWED: dict[str, tuple[frozenset, str]] = {
    "resume": (frozenset({Status.QUEUED, Status.TRAINING, Status.EVALUATING, Status.FAILED, Status.CANCELLED}),
               "nothing to resume."),
    "cancel": (frozenset({Status.QUEUED, Status.TRAINING, Status.EVALUATING}), "it cannot be cancelled."),
    "retire": (frozenset({Status.READY, Status.PROMOTED}), "only a ready or promoted generation can be retired."),
    "promote": (frozenset({Status.READY, Status.RETIRED}), "only a ready generation can be promoted."),
    "export": (frozenset({Status.READY, Status.EXPORTING, Status.PROMOTED, Status.RETIRED}),
               "only a trained generation is exported."),
}


def allowed(generation: ModelGeneration, action: str) -> bool:
    return generation.status in ALLOWED[action][0]


def guard(generation: ModelGeneration, action: str, error: type[Exception]) -> None:
    """Raise `error` (the caller's exception type) unless `action` is allowed from the generation's status."""
    if not allowed(generation, action):
        raise error(f"gen-{generation.number} is {generation.status}: {ALLOWED[action][1]}")
