from django.urls import path

from hooks import views

urlpatterns = [
    # One URL per hookq event, or one for all: the payload names its code.
    path("hooks/<str:code>", views.receive, name="hookq-receive"),
]
