"""The generation's transitions table: what each action is allowed from, and the page polling while a
worker owns the row (an export included)."""

import pytest

from annotation.models import DatasetVersion
from modeling import lifecycle
from modeling.models import ExportState, ModelGeneration
from modeling.services import generations as svc
from modeling.services.export import ExportRefused, generation_export_enqueue

Status = ModelGeneration.Status


@pytest.fixture
def make_generation(db):
    dataset = DatasetVersion.objects.create(number=1, status=DatasetVersion.Status.FROZEN)
    numbers = iter(range(1, 100))
    return lambda status: ModelGeneration.objects.create(number=next(numbers), base_model="tiny",
                                                         dataset_version=dataset, status=status)


def test_every_status_is_either_active_or_finished_and_every_action_names_real_statuses():
    assert lifecycle.ACTIVE | lifecycle.FINISHED == set(Status) and not lifecycle.ACTIVE & lifecycle.FINISHED
    assert Status.EXPORTING in lifecycle.ACTIVE  # the page kept polling during an export only once this held
    for allowed_from, message in lifecycle.ALLOWED.values():
        assert allowed_from <= set(Status) and message.endswith(".")
    assert {e.value for e in ExportState} == {"queued", "running", "passed", "failed", "error"}


@pytest.mark.parametrize("action, call", [
    ("retire", lambda g: svc.generation_retire(generation=g)),
    ("promote", lambda g: svc.generation_promote(generation=g, force=True)),
    ("cancel", lambda g: svc.generation_cancel(generation=g)),
])
def test_services_refuse_what_the_table_refuses(make_generation, action, call):
    for status in Status:
        if status in lifecycle.ALLOWED[action][0]:
            continue
        generation = make_generation(status)
        with pytest.raises(svc.GenerationError, match=f"gen-{generation.number} is {status.value}: "):
            call(generation)
        generation.refresh_from_db()
        assert generation.status == status  # refused: nothing changed


def test_an_export_is_refused_before_training_finished(make_generation):
    generation = make_generation(Status.TRAINING)
    with pytest.raises(ExportRefused, match="only a trained generation is exported"):
        generation_export_enqueue(generation=generation)
    assert not lifecycle.allowed(make_generation(Status.FAILED), "export")
    assert lifecycle.allowed(make_generation(Status.PROMOTED), "export")


def test_the_generation_page_keeps_polling_while_it_exports(make_generation, client_as):
    generation = make_generation(Status.EXPORTING)
    page = client_as("admin").get(f"/models/gen-{generation.number}/").content.decode()
    assert 'hx-trigger="every 2s"' in page
    generation.status = Status.READY
    generation.save()
    page = client_as("admin").get(f"/models/gen-{generation.number}/").content.decode()
    assert 'hx-trigger="every 2s"' not in page


def test_the_polled_card_carries_the_buttons_the_status_allows(make_generation, client_as):
    """The card the page polls holds the admin's buttons: a training that finishes offers Promote without
    a reload (the buttons sat outside the card and stayed at Cancel/Resume)."""
    generation = make_generation(Status.TRAINING)
    admin = client_as("admin")
    card = admin.get(f"/models/gen-{generation.number}/", HTTP_HX_REQUEST="true").content.decode()
    assert ">Cancel</button>" in card and ">Promote</button>" not in card
    generation.status, generation.stage = Status.READY, "evaluate"
    generation.save()
    response = admin.get(f"/models/gen-{generation.number}/", HTTP_HX_REQUEST="true")
    card = response.content.decode()
    assert response.status_code == 286  # htmx: stop polling
    assert ">Promote</button>" in card and ">Retire</button>" in card and ">Cancel</button>" not in card
    assert "stage <strong>" not in card  # a finished generation no longer shows its last stage
