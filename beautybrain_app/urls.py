from django.contrib import admin
from django.urls import include, path

from annotation import views_candidates
from beautybrain_app import auth, health, views

admin.site.login_form = auth.ThrottledAdminAuthenticationForm

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/login/", auth.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("kb/", include("kb.urls")),
    path("kb/candidates/", views_candidates.candidates, name="kb_candidates"),
    path("kb/candidates/resolve/", views_candidates.candidate_resolve, name="kb_candidate_resolve"),
    path("kb/candidates/alias/", views_candidates.alias_candidate, name="kb_alias_candidate"),
    path("models/", include("modeling.urls")),
    path("reports/", include("reports.urls")),
    path("", include("annotation.urls")),
]
