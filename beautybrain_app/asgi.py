import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beautybrain_app.settings")
# A production server (gunicorn, uvicorn) loads this module: DEBUG is off unless set, so SECRET_KEY must be.
# manage.py (the embedded `make run`, commands, tests) keeps the settings' default, DEBUG on.
os.environ.setdefault("DEBUG", "0")
application = get_asgi_application()
