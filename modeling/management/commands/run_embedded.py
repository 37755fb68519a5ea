"""`make run`: the whole app on one machine — web server and Celery workers, no other server needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from annotation.services.demo import demo_load, demo_users_ensure


class Command(BaseCommand):
    help = "Migrate, load demo data, then run the web server and Celery workers until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("BEAUTYBRAIN_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--no-demo", action="store_true", help="Skip loading the demo data.")

    def handle(self, *args, addr: str, no_demo: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        if not no_demo:
            demo_load(log=self.stdout.write)
        passwords = demo_users_ensure()
        env = dict(os.environ)
        procs = self.start_processes(addr, env)
        if not no_demo:
            from modeling.services.prelabel import prelabel_demo_start

            runs = prelabel_demo_start(local_teacher_url=env["GEMINI_BASE_URL"] if "fake-gemini" in procs else None,
                                       log=self.stdout.write)
            self.start_flywheel(runs)
        self.stdout.write(self.style.SUCCESS(f"\nBeautyBrain is running on http://{addr}/  (Ctrl-C stops everything)"))
        self.stdout.write("Demo users (passwords kept in var/demo_users.json):")
        for username, password in passwords.items():
            self.stdout.write(f"  {username:<11} {password}")
        self.supervise(procs)

    def start_flywheel(self, runs) -> None:
        """Gen-1 trains in the background once the demo pre-labels are in; the page shows it as it goes."""
        import threading

        from django.db import connection

        from modeling.services.flywheel import flywheel_after_prelabels

        def go():
            try:
                flywheel_after_prelabels(runs=runs, log=self.stdout.write)
            finally:
                connection.close()

        threading.Thread(target=go, name="flywheel-demo", daemon=True).start()

    def start_processes(self, addr: str, env: dict) -> dict[str, subprocess.Popen]:
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        celery = [python, "-m", "celery", "-A", "beautybrain_app", "worker", "-l", "INFO", "--without-gossip"]
        commands = {}
        if not settings.GEMINI_API_KEY and not env.get("GEMINI_BASE_URL"):
            # No key: the teacher is the local Gemini-compatible endpoint replaying the stored demo answers.
            port = int(os.environ.get("LOCAL_GEMINI_PORT", "8765"))
            demo = settings.BASE_DIR / "data" / "demo"
            commands["fake-gemini"] = [python, manage, "fake_gemini", "--port", str(port),
                                       "--replay", str(demo / "teacher_answers.jsonl"),
                                       "--replay", str(demo / "teacher_answers_social.jsonl")]
            env["GEMINI_BASE_URL"] = f"http://127.0.0.1:{port}"
        commands |= {
            # -B: Celery beat inside this worker ticks the flywheel (FLYWHEEL_TICK_SECONDS); one beat only.
            "worker": celery + ["-Q", "default,student", "-c", "2", "-n", "main@%h", "-B",
                                "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")],
            # Teacher calls wait on the network: threads hide that latency.
            "teacher-worker": celery + ["-Q", "teacher", "-P", "threads", "-c", "8", "--prefetch-multiplier", "2",
                                      "-n", "teacher@%h"],
            # Training and export take the machine: one at a time.
            "gpu-worker": celery + ["-Q", "gpu", "-c", "1", "-n", "gpu@%h"],
            "web": [python, manage, "runserver", addr, "--noreload"],
        }
        return {name: subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR) for name, cmd in commands.items()}

    def supervise(self, procs: dict[str, subprocess.Popen]) -> None:
        def stop(signum, frame):
            raise KeyboardInterrupt

        # A terminal's Ctrl-C, a closed terminal or a `kill` all stop the children too.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)
        try:
            while True:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with code {proc.returncode}; stopping.")
                        return
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
