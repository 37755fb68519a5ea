from django.urls import path

from beautybrain_app import converters  # noqa: F401  (registers <id:...>)

from modeling import views_generations, views_prelabel

urlpatterns: list = [
    path("", views_generations.generation_list, name="generation_list"),
    path("train/", views_generations.generation_train_next, name="generation_train_next"),
    path("gen-<id:number>/", views_generations.generation_detail, name="generation_detail"),
    path("gen-<id:number>/<str:action>/", views_generations.generation_action, name="generation_action"),
    path("prelabel/", views_prelabel.prelabel_start, name="prelabel_start"),
    path("prelabel/<id:pk>/", views_prelabel.prelabel_run, name="prelabel_run"),
]
