from django.urls import include, path

urlpatterns = [path("wa-sidecar/", include("wa_sidecar.django.urls"))]
