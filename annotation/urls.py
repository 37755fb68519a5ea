from django.urls import path

from annotation import views
from annotation import views_reports
from annotation import views_datasets

urlpatterns = [
    path("", views.home, name="home"),
    path("import/", views.import_upload, name="import_upload"),
    path("import/<int:pk>/", views.import_detail, name="import_detail"),
    path("reports/", views_reports.reports, name="reports"),
    path("reports/<slug:kind>.csv", views_reports.reports_export, name="reports_export"),
    path("datasets/", views_datasets.dataset_list, name="dataset_list"),
    path("datasets/freeze/", views_datasets.dataset_freeze, name="dataset_freeze"),
    path("datasets/v<int:number>/", views_datasets.dataset_detail, name="dataset_detail"),
    path("datasets/v<int:number>/<str:filename>", views_datasets.dataset_download, name="dataset_download"),
]
