from django.urls import path

from kb import views

urlpatterns = [
    path("brands/autocomplete/", views.brand_autocomplete, name="brand_autocomplete"),
]
