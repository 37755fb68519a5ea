"""The home page: every app's next steps for the signed-in user's roles. It sits on top of the apps."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from annotation.selectors import home_stats_for
from beautybrain_app.roles import user_roles
from modeling.services.flywheel import flywheel_status


@login_required
def home(request):
    roles = user_roles(request.user)
    stats = home_stats_for(request.user, roles)
    if "admin" in roles:
        stats["flywheel"] = flywheel_status()
    return render(request, "home.html", {"stats": stats})
