from django.contrib.auth import get_user_model

SYSTEM_USERNAME = "system"


def system_user():
    """The author of imported gold annotations; cannot log in."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False, "first_name": "Import"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
