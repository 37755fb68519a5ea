"""Settings, read from the environment. The defaults are the embedded, single-machine setup:
SQLite and a filesystem Celery broker under var/, so `make run` needs no server."""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env.str("BEAUTYBRAIN_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-never-used-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "ninja",  # so /api/docs serves Swagger UI from ninja's own static files, not a CDN
    "kb",
    "annotation",
    "modeling",
    "reports",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "api.middleware.ApiErrorsMiddleware",
    "beautybrain_app.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "beautybrain_app.urls"
WSGI_APPLICATION = "beautybrain_app.wsgi.application"
ASGI_APPLICATION = "beautybrain_app.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "beautybrain_app.context_processors.roles",
            ],
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so a Celery worker started by the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})
    # WAL + a busy timeout: the web server and a worker write the same file.
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
else:
    if env.str("TEST_DATABASE_NAME", default=""):  # parallel test runs on one server
        DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Shared by the web server and workers on one machine, unlike locmem.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Failed logins per (username, client address) before the login form refuses for a while.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_WINDOW_S = env.int("LOGIN_FAILURE_WINDOW_S", default=300)
LOGIN_FAILURE_USER_FACTOR = env.int("LOGIN_FAILURE_USER_FACTOR", default=4)  # per username, from any address

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = VAR_DIR / "media"

# Uploads: anything above the memory limit streams to a temporary file; imports read it line by line.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=200 * 1024 * 1024)
# Imports bigger than this run as a Celery task with progress; smaller ones run in the request.
IMPORT_SYNC_MAX_BYTES = env.int("IMPORT_SYNC_MAX_BYTES", default=256 * 1024)

# --- Security (production values follow from DEBUG=0) ------------------------------------
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = env.str("CONTENT_SECURITY_POLICY", default=(
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"))
DEFAULT_EXCEPTION_REPORTER_FILTER = "beautybrain_app.debug.ReporterFilter"  # no passwords from URLs on the debug page
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_REFERRER_POLICY = "same-origin"
HEALTHZ_TOKEN = env.str("HEALTHZ_TOKEN", default="")  # lets a monitor read /healthz's details without a login
# /healthz is probed over plain HTTP by load balancers.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Celery ------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "beautybrain_app.broker:Transport"  # atomic message writes (broker.py)
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # kombu polls the folder (1 s by default); a shorter wait lets a worker's freed slot take the next task sooner.
        "polling_interval": env.float("CELERY_BROKER_POLLING_INTERVAL", default=0.2),
    }
    _default_results = f"file://{VAR_DIR / 'celery-results'}"
    (VAR_DIR / "celery-results").mkdir(exist_ok=True)
else:
    # Redis redelivers a message not acked within the visibility timeout (1 h by default) to another
    # worker, even while the first still runs it: longer than any training. A dead worker's message comes
    # back when its worker restarts (unacked) or after this; GenerationLease guards the overlap.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=12 * 3600)}
    _default_results = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "disabled"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_default_results)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_QUEUES = ("default", "teacher", "student", "gpu")
CELERY_TASK_ROUTES = {
    "modeling.tasks.teacher_*": {"queue": "teacher"},
    "modeling.tasks.student_*": {"queue": "student"},
    "modeling.tasks.gpu_*": {"queue": "gpu"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A gpu worker renews its lease on the generation it trains every quarter of this; a dead one's lapses.
GPU_LEASE_SECONDS = env.int("GPU_LEASE_SECONDS", default=120)
# The sweeper (modeling/services/sweeper.py, on Celery beat every SWEEP_SECONDS) resends an import, freeze,
# pre-label run or training that made no progress for SWEEP_STALE_SECONDS while nothing of its kind ran,
# and fails it with the reason after SWEEP_MAX_RESUMES resends.
SWEEP_SECONDS = env.int("SWEEP_SECONDS", default=300)
REPORTS_CUBE_SECONDS = env.int("REPORTS_CUBE_SECONDS", default=60)  # see REPORTS_CUBE below
SWEEP_STALE_SECONDS = env.int("SWEEP_STALE_SECONDS", default=900)
SWEEP_MAX_RESUMES = env.int("SWEEP_MAX_RESUMES", default=3)

# --- Teacher (Gemini) --------------------------------------------------------------------
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
GEMINI_BASE_URL = env.str("GEMINI_BASE_URL", default="")
GEMINI_MODEL = env.str("GEMINI_MODEL", default="gemini-2.5-flash")
GEMINI_PRICE_IN_PER_M = env.float("GEMINI_PRICE_IN_PER_M", default=0.30)
GEMINI_PRICE_OUT_PER_M = env.float("GEMINI_PRICE_OUT_PER_M", default=2.50)
GEMINI_TIMEOUT_S = env.float("GEMINI_TIMEOUT_S", default=60.0)
GEMINI_MAX_ATTEMPTS = env.int("GEMINI_MAX_ATTEMPTS", default=5)
GEMINI_RETRY_INITIAL_DELAY_S = env.float("GEMINI_RETRY_INITIAL_DELAY_S", default=1.0)  # backoff doubles from here
GEMINI_RATE_PER_S = env.float("GEMINI_RATE_PER_S", default=10.0)
TEACHER_BUDGET_USD = env.float("TEACHER_BUDGET_USD", default=25.0)

# --- Student model -----------------------------------------------------------------------
BEAUTYBRAIN_BACKBONE = env.str("BEAUTYBRAIN_BACKBONE", default="")  # "" = the CPU default
TORCH_THREADS = env.int("TORCH_THREADS", default=len(os.sched_getaffinity(0)))
TORCH_DEVICE = env.str("TORCH_DEVICE", default="cpu")
MODELS_DIR = Path(env.str("MODELS_DIR", default=str(VAR_DIR / "models")))
STUDENT_HOURLY_PRICE_USD = env.float("STUDENT_HOURLY_PRICE_USD", default=0.10)
# Export (modeling/export.py): quantise each generation after its evaluation; an export losing more
# than EXPORT_MAX_SPAN_F1_DROP span F1 (0..1 scale) on the test split is kept for audit, never served.
EXPORT_AFTER_TRAINING = env.bool("EXPORT_AFTER_TRAINING", default=True)
EXPORT_MAX_SPAN_F1_DROP = env.float("EXPORT_MAX_SPAN_F1_DROP", default=0.03)
EXPORT_CALIBRATION_SAMPLES = env.int("EXPORT_CALIBRATION_SAMPLES", default=128)  # AWQ: train texts used

# --- Flywheel (modeling/services/flywheel.py): the retraining policy one tick applies -------------
# A tick freezes, trains, evaluates, exports and promotes (gate: beat the promoted span F1) when there
# are FLYWHEEL_MIN_NEW_GOLD new/changed gold annotations since the last version, or any new gold once
# the last version is FLYWHEEL_MAX_AGE_HOURS old (0: no schedule). With none promoted, any gold will do.
FLYWHEEL_ENABLED = env.bool("FLYWHEEL_ENABLED", default=True)
FLYWHEEL_MIN_NEW_GOLD = env.int("FLYWHEEL_MIN_NEW_GOLD", default=50)
FLYWHEEL_MAX_AGE_HOURS = env.float("FLYWHEEL_MAX_AGE_HOURS", default=24.0)
FLYWHEEL_TICK_SECONDS = env.int("FLYWHEEL_TICK_SECONDS", default=300)  # Celery beat period
FLYWHEEL_EPOCHS = env.float("FLYWHEEL_EPOCHS", default=0.0)  # 0: the student config's default
FLYWHEEL_STUDENT_CONFIG = env.json("FLYWHEEL_STUDENT_CONFIG", default={})  # StudentConfig overrides
FLYWHEEL_DEMO_EPOCHS = env.float("FLYWHEEL_DEMO_EPOCHS", default=1.0)  # `make run`'s gen-1 (0: as above)
FLYWHEEL_PRELABEL_ON_PROMOTE = env.bool("FLYWHEEL_PRELABEL_ON_PROMOTE", default=True)  # student suggestions
# Cascade pre-labelling (modeling/services/cascade.py): the promoted student labels every post; this share
# of them, the ones it is least sure of (calibrated on val), also goes to the teacher (within its budget).
CASCADE_TEACHER_SHARE = env.float("CASCADE_TEACHER_SHARE", default=0.2)
# Shadow release: a candidate generation labels this share of the posts the promoted student pre-labels.
SHADOW_SAMPLE_SHARE = env.float("SHADOW_SAMPLE_SHARE", default=0.2)
CELERY_BEAT_SCHEDULE = {
    "flywheel-tick": {"task": "modeling.tasks.flywheel_tick", "schedule": float(FLYWHEEL_TICK_SECONDS)},
    "sweep-stale": {"task": "modeling.tasks.sweep_stale", "schedule": float(SWEEP_SECONDS)},
    "reports-cube": {"task": "reports.tasks.cube_refresh", "schedule": float(REPORTS_CUBE_SECONDS)},
}

# --- Datasets ----------------------------------------------------------------------------
DATASET_SPLIT_RATIOS = {
    "train": env.float("DATASET_TRAIN_RATIO", default=0.8),
    "val": env.float("DATASET_VAL_RATIO", default=0.1),
    "test": env.float("DATASET_TEST_RATIO", default=0.1),
}
DATASETS_DIR = Path(env.str("DATASETS_DIR", default=str(VAR_DIR / "datasets")))

# --- Annotation workflow -----------------------------------------------------------------
ANNOTATION_DOUBLE_SHARE = env.float("ANNOTATION_DOUBLE_SHARE", default=0.1)
ANNOTATION_ASSIGNMENT_TTL_MIN = env.int("ANNOTATION_ASSIGNMENT_TTL_MIN", default=30)

# --- Reports -----------------------------------------------------------------------------
# The reports page keeps its figures this long per filter set (0: never); CSV downloads are always live.
REPORTS_PAGE_CACHE_SECONDS = env.int("REPORTS_PAGE_CACHE_SECONDS", default=300)
# The reports page reads materialised aggregates (reports/cube.py) rebuilt when the data changes: inline
# on the next page view while posts' spans + predictions are at most REPORTS_CUBE_INLINE_ROWS, else by
# the reports.tasks.cube_refresh task (beat every REPORTS_CUBE_SECONDS). Off: one pass over the mentions.
REPORTS_CUBE = env.bool("REPORTS_CUBE", default=True)
REPORTS_CUBE_INLINE_ROWS = env.int("REPORTS_CUBE_INLINE_ROWS", default=50_000)
# A week or month with fewer mentions than this is left out of the share-of-voice chart: one post would
# draw a 100% spike. The tables and CSVs keep every bucket.
REPORTS_SOV_MIN_MENTIONS = env.int("REPORTS_SOV_MIN_MENTIONS", default=5)

# --- JSON API (/api/) ----------------------------------------------------------------------
# Requests per token per window ("600/min", "100/10s", "0" = none), counted in the cache above.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="600/min")
# Larger bodies are refused with 413 before they are read; DATA_UPLOAD_MAX_MEMORY_SIZE caps them too.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=DATA_UPLOAD_MAX_MEMORY_SIZE)

# --- Logging: one JSON object per line ---------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "beautybrain_app.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}
