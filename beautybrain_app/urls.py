from django.contrib import admin
from django.urls import include, path

from beautybrain_app import auth, health

admin.site.login_form = auth.ThrottledAdminAuthenticationForm

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("accounts/login/", auth.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("kb/", include("kb.urls")),
    path("models/", include("modeling.urls")),
    path("", include("annotation.urls")),
]
