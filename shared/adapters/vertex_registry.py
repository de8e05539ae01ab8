"""Vertex AI Model Registry adapter (``SHOPML_REGISTRY=vertex://project/region``).

A shopml model (``demand``) is one Vertex AI Model; each semantic version is a Vertex model
*version* of it, found by labels (label values allow only ``[a-z0-9_-]``):

* ``shopml-model=<model>`` on every version: how the parent model is found;
* ``shopml-version=1-3-0``: the semantic version in label form, for filtering.

The exact semantic version is the last segment of the version's ``artifact_uri``
(``gs://<staging>/registry/<model>/<version>``), the folder that holds ``model.onnx`` and
``card.json``: files are uploaded there first (GCS object store), then the Model version is
created. shopml aliases (``candidate``, later ``live``, ``previous``) are Vertex version
aliases; Vertex's own ``default`` alias is left out of ``ModelVersion.aliases``.

**Serving container.** ONNX has no Vertex prebuilt prediction container, and shopml never
deploys these models to a Vertex endpoint: the ``predict`` function serves the ONNX file
itself. The registry still needs *a* ``container_spec``: the GAPIC ``Model`` documents
``container_spec`` as "not required for AutoML models" only, and aiplatform 2.7.0's
``Model.upload`` refuses an ``artifact_uri`` without ``serving_container_image_uri``. Vertex
copies the image reference at upload, so it must exist and be pullable: we give the trainer
image (``SHOPML_TRAINER_IMAGE``, in our own Artifact Registry repository), with routes that
say "not served here". Deploying such a version to an endpoint is not supported.

Requests are built by pure functions (``build_upload_request``, ``build_list_versions_request``,
``build_merge_aliases_request``) so tests assert the exact protos; the ``ModelServiceClient``
is injectable and created lazily. ``google.cloud.aiplatform_v1`` is imported inside functions
only (``shared.adapters.vertex_api``, about 3 s): never at import time of ``shared`` or a function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.adapters.vertex_api import aiplatform_v1, location_path, regional_client_options
from shared.errors import ConfigurationError, PermanentError, TransientError
from shared.ports import ModelVersion, ObjectStore
from shared.registry import (
    CARD_FILE,
    VersionExists,
    check_alias,
    check_model_name,
    check_registration,
    check_version,
    is_semver,
    read_model_file,
    store_version_files,
    version_key,
    version_label,
)

MODEL_LABEL = "shopml-model"
VERSION_LABEL = "shopml-version"
VERTEX_DEFAULT_ALIAS = "default"
UPLOAD_TIMEOUT_S = 600.0


def parse_vertex_url(url: str) -> tuple[str, str]:
    """``vertex://project/region`` → (project, region)."""
    rest = url[len("vertex://") :] if url.startswith("vertex://") else ""
    project, _, region = rest.strip("/").partition("/")
    if not project or not region or "/" in region:
        raise ConfigurationError(f"SHOPML_REGISTRY={url!r}: write vertex://<project>/<region>")
    return project, region


def model_filter(model: str) -> str:
    return f'labels.{MODEL_LABEL}="{check_model_name(model)}"'


def version_filter(version: str) -> str:
    return f'labels.{VERSION_LABEL}="{version_label(version)}"'


def build_upload_request(
    *,
    project: str,
    region: str,
    model: str,
    version: str,
    artifact_uri: str,
    serving_image: str,
    aliases: Sequence[str] = (),
    parent_model: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Any:
    """The ``UploadModelRequest`` that registers ``version`` of ``model``.

    With ``parent_model`` (the existing model's resource name) it becomes a new version of that
    model; without, the first version of a new model whose id is ``shopml-<model>``, so a
    second "first" upload racing this one fails instead of creating a twin model.
    """
    v1 = aiplatform_v1()
    check_model_name(model)
    check_version(version)
    if not serving_image:
        raise ConfigurationError(
            "the Vertex registry needs an image for the model's container_spec: set SHOPML_TRAINER_IMAGE"
        )
    model_labels = {**(labels or {}), MODEL_LABEL: model, VERSION_LABEL: version_label(version)}
    body = v1.Model(
        display_name=model,
        description=f"shopml {model}: ONNX model served by the predict function, not by Vertex.",
        version_description=f"shopml {model} {version}",
        version_aliases=[check_alias(a) for a in aliases],
        artifact_uri=artifact_uri,
        labels=model_labels,
        container_spec=v1.ModelContainerSpec(
            image_uri=serving_image,
            # Never started by shopml; the routes say where predictions really come from.
            predict_route="/not-served-here/use-the-predict-function",
            health_route="/not-served-here",
        ),
    )
    request = v1.UploadModelRequest(parent=location_path(project, region), model=body)
    if parent_model:
        request.parent_model = parent_model
    else:
        request.model_id = f"shopml-{model}".replace("_", "-")
    return request


def build_list_models_request(project: str, region: str, model: str) -> Any:
    return aiplatform_v1().ListModelsRequest(
        parent=location_path(project, region), filter=model_filter(model)
    )


def build_list_versions_request(parent_model: str, version: str | None = None) -> Any:
    request = aiplatform_v1().ListModelVersionsRequest(name=parent_model)
    if version is not None:
        request.filter = version_filter(version)
    return request


def build_merge_aliases_request(model_name: str, version_id: str, aliases: Sequence[str]) -> Any:
    """Adds ``aliases`` to one version; Vertex moves an alias off the version that held it."""
    return aiplatform_v1().MergeVersionAliasesRequest(
        name=f"{model_name}@{version_id}", version_aliases=[check_alias(a) for a in aliases]
    )


def _map_error(exc: Exception, what: str) -> Exception:
    from google.api_core import exceptions

    if isinstance(
        exc,
        exceptions.InvalidArgument | exceptions.FailedPrecondition | exceptions.AlreadyExists,
    ):
        return PermanentError(f"{what}: {exc}")
    # Permission and availability problems are retried (and end in the dead-letter topic, kept).
    return TransientError(f"{what}: {exc}")


class VertexModelRegistry:
    """``ModelRegistry`` on Vertex AI; model files in ``staging`` (``gs://<bucket>/registry``)."""

    def __init__(
        self,
        project: str,
        region: str,
        staging: ObjectStore,
        serving_image: str,
        *,
        client: Any = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.project = project
        self.region = region
        self.staging = staging
        self.serving_image = serving_image
        self.labels = dict(labels or {"app": "shopml"})
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aiplatform_v1().ModelServiceClient(
                client_options=regional_client_options(self.region)
            )
        return self._client

    def _call(self, what: str, method: str, request: Any, **kwargs: Any) -> Any:
        from google.api_core import exceptions

        try:
            return getattr(self.client, method)(request=request, **kwargs)
        except exceptions.GoogleAPICallError as exc:
            raise _map_error(exc, what) from exc

    # --- lookups ---------------------------------------------------------------------------

    def parent_model(self, model: str) -> str | None:
        """Resource name of the Vertex model holding ``model``'s versions, or None."""
        found = list(
            self._call(
                f"listing Vertex models of {model}",
                "list_models",
                build_list_models_request(self.project, self.region, model),
            )
        )
        return found[0].name if found else None

    def _vertex_versions(
        self, model: str, version: str | None = None, *, parent: str | None = None
    ) -> list[Any]:
        parent = parent or self.parent_model(model)
        if parent is None:
            return []
        return list(
            self._call(
                f"listing versions of {parent}",
                "list_model_versions",
                build_list_versions_request(parent, version),
            )
        )

    def _to_model_version(self, model: str, vertex_model: Any) -> ModelVersion | None:
        uri = str(vertex_model.artifact_uri).rstrip("/")
        version = uri.rsplit("/", 1)[-1]
        if not is_semver(version):
            return None  # not uploaded by shopml
        raw = self.staging.get(f"{model}/{version}/{CARD_FILE}")
        return ModelVersion(
            model=model,
            version=version,
            aliases=tuple(sorted(a for a in vertex_model.version_aliases if a != VERTEX_DEFAULT_ALIAS)),
            uri=uri,
            card=json.loads(raw) if raw is not None else {},
        )

    def get(self, model: str, ref: str) -> ModelVersion | None:
        check_model_name(model)
        if is_semver(ref):
            converted = [self._to_model_version(model, v) for v in self._vertex_versions(model, ref)]
            matching = [v for v in converted if v is not None and v.version == ref]
            return matching[0] if matching else None
        from google.api_core import exceptions

        parent = self.parent_model(model)
        if parent is None:
            return None
        try:
            vertex_model = self.client.get_model(
                request=aiplatform_v1().GetModelRequest(name=f"{parent}@{ref}")
            )
        except exceptions.NotFound:
            return None
        except exceptions.GoogleAPICallError as exc:
            raise _map_error(exc, f"reading {parent}@{ref}") from exc
        return self._to_model_version(model, vertex_model)

    def versions(self, model: str) -> list[ModelVersion]:
        check_model_name(model)
        converted = [self._to_model_version(model, v) for v in self._vertex_versions(model)]
        return sorted((v for v in converted if v is not None), key=lambda v: version_key(v.version))

    def load_onnx(self, version: ModelVersion) -> bytes:
        return read_model_file(self.staging, version)

    # --- writes ----------------------------------------------------------------------------

    def register(
        self,
        model: str,
        version: str,
        onnx_model: bytes,
        card: Mapping[str, Any],
        aliases: Sequence[str] = (),
    ) -> ModelVersion:
        check_registration(model, version, aliases)
        parent = self.parent_model(model)
        if parent is not None and any(
            self._to_model_version(model, v) for v in self._vertex_versions(model, version, parent=parent)
        ):
            raise VersionExists(f"{model} {version} is already registered in {parent}; bump the version")
        artifact_uri = store_version_files(self.staging, model, version, onnx_model, card)
        request = build_upload_request(
            project=self.project,
            region=self.region,
            model=model,
            version=version,
            artifact_uri=artifact_uri,
            serving_image=self.serving_image,
            aliases=aliases,
            parent_model=parent,
            labels=self.labels,
        )
        operation = self._call(f"uploading {model} {version} to Vertex AI", "upload_model", request)
        try:
            operation.result(timeout=UPLOAD_TIMEOUT_S)
        except Exception as exc:
            from google.api_core import exceptions

            if isinstance(exc, exceptions.GoogleAPICallError):
                raise _map_error(exc, f"uploading {model} {version} to Vertex AI") from exc
            raise TransientError(f"uploading {model} {version} to Vertex AI: {exc}") from exc
        return ModelVersion(
            model=model,
            version=version,
            aliases=tuple(sorted(aliases)),
            uri=artifact_uri,
            card=dict(card),
        )

    def set_alias(self, model: str, alias: str, version: str) -> None:
        check_alias(alias)
        found = [v for v in self._vertex_versions(model, version) if self._to_model_version(model, v)]
        if not found:
            raise PermanentError(f"cannot point alias {alias!r} at {model} {version}: no such version")
        target = found[0]
        self._call(
            f"moving alias {alias} of {model} to {version}",
            "merge_version_aliases",
            build_merge_aliases_request(target.name, target.version_id, [alias]),
        )


def create_vertex_registry(
    registry_url: str, staging_bucket: str, serving_image: str, *, client: Any = None
) -> VertexModelRegistry:
    from shared.adapters.object_stores import GcsObjectStore

    project, region = parse_vertex_url(registry_url)
    if not staging_bucket.startswith("gs://"):
        raise ConfigurationError(
            "SHOPML_REGISTRY=vertex://... needs SHOPML_VERTEX_STAGING_BUCKET=gs://<bucket> "
            "for the model files"
        )
    bucket = staging_bucket[len("gs://") :].strip("/").split("/", 1)[0]
    staging = GcsObjectStore(bucket, "registry", project=project)
    return VertexModelRegistry(project, region, staging, serving_image, client=client)
