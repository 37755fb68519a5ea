from django.urls import path

from kb import views

urlpatterns = [
    path("brands/autocomplete/", views.brand_autocomplete, name="brand_autocomplete"),
    path("candidates/", views.candidates, name="kb_candidates"),
    path("candidates/resolve/", views.candidate_resolve, name="kb_candidate_resolve"),
    path("candidates/alias/", views.alias_candidate, name="kb_alias_candidate"),
]
