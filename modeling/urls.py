from django.urls import path

from modeling import views_prelabel

urlpatterns: list = [
    path("prelabel/", views_prelabel.prelabel_start, name="prelabel_start"),
    path("prelabel/<int:pk>/", views_prelabel.prelabel_run, name="prelabel_run"),
]
