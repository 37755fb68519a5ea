from django.urls import path

from annotation import views
from annotation import views_reports

urlpatterns = [
    path("", views.home, name="home"),
    path("import/", views.import_upload, name="import_upload"),
    path("import/<int:pk>/", views.import_detail, name="import_detail"),
    path("reports/", views_reports.reports, name="reports"),
    path("reports/<slug:kind>.csv", views_reports.reports_export, name="reports_export"),
]
