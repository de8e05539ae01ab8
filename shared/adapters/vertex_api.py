"""What both Vertex AI adapters (the model registry, the CustomJob training backend) share:
the lazy import of the GAPIC package (about 3 s: never at import time of a function), the
location path and the regional endpoint."""

from __future__ import annotations

from typing import Any

from shared.errors import ConfigurationError


def aiplatform_v1() -> Any:
    try:
        from google.cloud import aiplatform_v1 as v1
    except ImportError as exc:  # pragma: no cover - the dependency is pinned
        raise ConfigurationError(
            "Vertex AI needs 'google-cloud-aiplatform' (pip install google-cloud-aiplatform)"
        ) from exc
    return v1


def location_path(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}"


def regional_client_options(region: str) -> dict[str, str]:
    """Vertex AI serves each region from its own endpoint."""
    return {"api_endpoint": f"{region}-aiplatform.googleapis.com"}
