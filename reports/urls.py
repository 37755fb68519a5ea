from django.urls import path

from reports import views

urlpatterns = [
    path("", views.reports, name="reports"),
    path("<slug:kind>.csv", views.reports_export, name="reports_export"),
]
