from django.contrib import admin, messages

from api.models import ApiToken
from api.services import api_tokens_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = ["name", "prefix", "token_sha256", "scope", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # The secret must be shown exactly once, to whoever made it: `manage.py api_token create`.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        n = api_tokens_revoke(tokens=queryset)
        self.message_user(request, f"Revoked {n} token(s).", messages.SUCCESS)
