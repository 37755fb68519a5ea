from beautybrain_app.roles import user_roles


def roles(request) -> dict:
    return {"roles": user_roles(request.user) if hasattr(request, "user") else set()}
