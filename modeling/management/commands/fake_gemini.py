from django.core.management.base import BaseCommand

from modeling.teacher import fake_server


class Command(BaseCommand):
    help = "Serve a local Gemini-compatible endpoint (tests, bench, demo): scripted failures, replay of stored answers."

    def add_arguments(self, parser):
        fake_server.add_arguments(parser)

    def handle(self, *args, host, port, replay, posts, latency_ms, **options):
        fake_server.run(host=host, port=port, replay=replay, posts=posts, latency_ms=latency_ms, out=print)
