from django.urls import path

from annotation import views

urlpatterns = [
    path("", views.home, name="home"),
    path("import/", views.import_upload, name="import_upload"),
    path("import/<int:pk>/", views.import_detail, name="import_detail"),
]
