from django.urls import path

from beautybrain_app import converters  # noqa: F401  (registers <id:...>)

from annotation import views
from annotation import views_editor as editor
from annotation import views_datasets

urlpatterns = [
    path("import/", views.import_upload, name="import_upload"),
    path("import/<id:pk>/", views.import_detail, name="import_detail"),
    path("queue/", editor.queue, name="queue"),
    path("queue/skip/<id:post_id>/", editor.queue_skip, name="queue_skip"),
    path("annotate/<id:post_id>/", editor.editor, name="editor"),
    path("annotate/<id:post_id>/change/", editor.editor_change, name="editor_change"),
    path("annotate/<id:post_id>/undo/", editor.editor_undo, name="editor_undo"),
    path("annotate/<id:post_id>/submit/", editor.editor_submit, name="editor_submit"),
    path("annotate/<id:post_id>/reopen/", editor.editor_reopen, name="editor_reopen"),
    path("annotate/help/", editor.editor_help, name="editor_help"),
    path("review/", editor.review_list, name="review_list"),
    path("review/<id:post_id>/", editor.review_detail, name="review_detail"),
    path("review/<id:post_id>/accept/<id:annotation_id>/", editor.review_accept, name="review_accept"),
    path("review/<id:post_id>/merge/", editor.review_merge, name="review_merge"),
    path("agreement/", editor.agreement, name="agreement"),
    path("progress/", editor.progress, name="progress"),
    path("datasets/", views_datasets.dataset_list, name="dataset_list"),
    path("datasets/freeze/", views_datasets.dataset_freeze, name="dataset_freeze"),
    path("datasets/v<id:number>/", views_datasets.dataset_detail, name="dataset_detail"),
    path("datasets/v<id:number>/<str:filename>", views_datasets.dataset_download, name="dataset_download"),
]
