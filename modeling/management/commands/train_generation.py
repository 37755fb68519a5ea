from django.core.management.base import BaseCommand, CommandError

from annotation.models import DatasetVersion
from modeling.models import ModelGeneration
from modeling.services.generations import GenerationError, generation_create, generation_resume, generation_train


class Command(BaseCommand):
    help = ("Train the next model generation on a frozen dataset version (queued on the gpu queue, or --sync "
            "in this process); prints the generation number. --resume N re-runs a stale or failed generation "
            "from its last checkpoint.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", type=int, help="dataset version number (frozen)")
        parser.add_argument("--backbone", default="", help="local path or Hugging Face name (default: the CPU default)")
        parser.add_argument("--epochs", type=float, default=None)
        parser.add_argument("--sync", action="store_true", help="train here instead of on the gpu queue")
        parser.add_argument("--resume", type=int, default=None, help="generation number to resume")

    def handle(self, *args, dataset, backbone, epochs, sync, resume, **options):
        try:
            if resume is not None:
                generation = ModelGeneration.objects.filter(number=resume).first()
                if generation is None:
                    raise CommandError(f"There is no generation {resume}.")
                if sync:
                    ModelGeneration.objects.filter(pk=generation.pk).update(status=ModelGeneration.Status.QUEUED,
                                                                             cancel_requested=False)
                else:
                    generation_resume(generation=generation)
            else:
                if dataset is None:
                    raise CommandError("--dataset N is required (or --resume GEN).")
                version = DatasetVersion.objects.filter(number=dataset).first()
                if version is None:
                    raise CommandError(f"There is no dataset version {dataset}.")
                generation = generation_create(dataset_version=version, base_model=backbone, epochs=epochs,
                                               enqueue=not sync)
        except GenerationError as exc:
            raise CommandError(str(exc)) from exc
        if sync:
            status = generation_train(generation_id=generation.pk)
            generation.refresh_from_db()
            if status == ModelGeneration.Status.FAILED:
                raise CommandError(f"gen-{generation.number} failed: {generation.error}")
            self.stderr.write(f"gen-{generation.number}: {status}")
        self.stdout.write(str(generation.number))
