"""Object stores: a local folder (embedded default) and Google Cloud Storage, same semantics.

``put`` replaces a whole object at once in both: locally a temporary file in the same folder
is written, flushed to disk and renamed over the target (``os.replace`` is atomic on POSIX);
on GCS an upload becomes visible only when complete. Readers therefore see the old or the new
bytes, never a torn file. Neither offers compare-and-swap: GCS has generation preconditions,
but the storage emulator used in tests ignores them (docs/DESIGN.md, "Facts about the tools"),
so nothing here relies on them.

``google-cloud-storage`` is imported only when a GCS store is built.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError, PermanentError, TransientError

_TMP_SUFFIX = ".tmp"


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise PermanentError(f"object key {key!r} must be a relative path without empty, . or .. parts")
    return key


class LocalObjectStore:
    """Objects as files under ``root`` (``.shopml/objects/`` or ``.shopml/registry/``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_TMP_SUFFIX}")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(_TMP_SUFFIX)):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def uri(self, key: str) -> str:
        return (self.root / key).as_uri() if key else self.root.as_uri()

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True


def _storage() -> Any:
    try:
        from google.cloud import storage  # type: ignore[attr-defined]
    except ImportError as exc:  # pragma: no cover - the dependency is pinned
        raise ConfigurationError(
            "a gs:// object store needs the 'google-cloud-storage' package (pip install google-cloud-storage)"
        ) from exc
    return storage


def storage_client(project: str) -> Any:
    """A GCS client; with ``STORAGE_EMULATOR_HOST`` set, anonymous against the emulator."""
    storage = _storage()
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client(project=project)


def _map_gcs_error(exc: Exception, what: str) -> Exception:
    from google.api_core import exceptions

    if isinstance(exc, exceptions.Forbidden | exceptions.Unauthorized | exceptions.BadRequest):
        return PermanentError(f"{what}: {exc}")
    if isinstance(exc, exceptions.NotFound):
        return PermanentError(f"{what}: bucket not found ({exc})")
    return TransientError(f"{what}: {exc}")


class GcsObjectStore:
    """Objects under ``gs://bucket/prefix``. The client is injectable (tests: the emulator)."""

    def __init__(self, bucket: str, prefix: str = "", *, project: str = "", client: Any = None) -> None:
        if not bucket:
            raise ConfigurationError("a GCS object store needs a bucket name")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._project = project
        self._client = client
        self._bucket: Any = None

    @classmethod
    def from_url(cls, url: str, *, project: str = "", client: Any = None) -> GcsObjectStore:
        if not url.startswith("gs://"):
            raise ConfigurationError(f"{url!r} is not a gs://bucket/prefix URL")
        bucket, _, prefix = url[len("gs://") :].partition("/")
        return cls(bucket, prefix, project=project, client=client)

    def _get_bucket(self) -> Any:
        if self._bucket is None:
            if self._client is None:
                self._client = storage_client(self._project)
            self._bucket = self._client.bucket(self.bucket_name)
        return self._bucket

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        from google.api_core import exceptions

        name = self._name(key)
        try:
            self._get_bucket().blob(name).upload_from_string(data, content_type=content_type)
        except exceptions.GoogleAPICallError as exc:
            raise _map_gcs_error(exc, f"writing gs://{self.bucket_name}/{name}") from exc

    def get(self, key: str) -> bytes | None:
        from google.api_core import exceptions

        name = self._name(key)
        try:
            data: bytes = self._get_bucket().blob(name).download_as_bytes()
        except exceptions.NotFound:
            return None
        except exceptions.GoogleAPICallError as exc:
            raise _map_gcs_error(exc, f"reading gs://{self.bucket_name}/{name}") from exc
        return data

    def exists(self, key: str) -> bool:
        from google.api_core import exceptions

        name = self._name(key)
        try:
            return bool(self._get_bucket().blob(name).exists())
        except exceptions.GoogleAPICallError as exc:
            raise _map_gcs_error(exc, f"checking gs://{self.bucket_name}/{name}") from exc

    def list(self, prefix: str = "") -> list[str]:
        from google.api_core import exceptions

        base = f"{self.prefix}/" if self.prefix else ""
        try:
            names = [blob.name for blob in self._get_bucket().list_blobs(prefix=base + prefix)]
        except exceptions.GoogleAPICallError as exc:
            raise _map_gcs_error(exc, f"listing gs://{self.bucket_name}/{base}{prefix}") from exc
        return sorted(name[len(base) :] for name in names)

    def delete(self, key: str) -> bool:
        from google.api_core import exceptions

        name = self._name(key)
        try:
            self._get_bucket().blob(name).delete()
        except exceptions.NotFound:
            return False
        except exceptions.GoogleAPICallError as exc:
            raise _map_gcs_error(exc, f"deleting gs://{self.bucket_name}/{name}") from exc
        return True

    def uri(self, key: str) -> str:
        path = self._name(key) if key else self.prefix
        return f"gs://{self.bucket_name}/{path}" if path else f"gs://{self.bucket_name}"


def create_object_store(
    url: str, *, project: str = "", client: Any = None
) -> LocalObjectStore | GcsObjectStore:
    """``file:///dir`` or ``gs://bucket/prefix`` → the matching object store."""
    if url.startswith("file://"):
        return LocalObjectStore(Path(url[len("file://") :]))
    if url.startswith("gs://"):
        return GcsObjectStore.from_url(url, project=project, client=client)
    raise ConfigurationError(f"object store URL {url!r}: use file:///dir or gs://bucket/prefix")
