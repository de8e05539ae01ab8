"""The ``[webhooks]`` section of ``shopify.app.toml``: app-specific subscriptions.

Shopify's app configuration file holds the subscriptions every shop of the app gets (deployed
with ``shopify app deploy``; Shopify keeps them in place), and it is the only place the
mandatory privacy topics can be subscribed (``compliance_topics``). ``write_webhooks_section``
replaces that section (``[webhooks]`` and its ``[[webhooks.subscriptions]]`` tables) and keeps
everything else of the file byte for byte; it writes only when the content changes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

HEADER = "# Written by `shopml connect`; edit the topics in shopml's settings, not here.\n"


def webhooks_section(
    api_version: str, https_uri: str, topics: Sequence[str], compliance: Sequence[str]
) -> str:
    def quoted(values: Sequence[str]) -> str:
        return "[ " + ", ".join(f'"{v}"' for v in values) + " ]"

    text = HEADER + f'[webhooks]\napi_version = "{api_version}"\n'
    if topics:
        text += f'\n  [[webhooks.subscriptions]]\n  topics = {quoted(topics)}\n  uri = "{https_uri}"\n'
    if compliance:
        text += (
            f"\n  [[webhooks.subscriptions]]\n  compliance_topics = {quoted(compliance)}\n"
            f'  uri = "{https_uri}"\n'
        )
    return text


def _is_webhooks_header(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(("[webhooks]", "[webhooks.", "[[webhooks.")) or stripped == "[[webhooks]]"


def replace_section(original: str, section: str) -> str:
    """``original`` with its webhooks tables (and the comment line we wrote) swapped for ``section``."""
    kept: list[str] = []
    inside = False
    for line in original.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("#"):
            inside = _is_webhooks_header(line)
        if line == HEADER:
            continue
        if not inside:
            kept.append(line)
    body = "".join(kept).rstrip("\n")
    return (body + "\n\n" if body else "") + section


def write_webhooks_section(
    path: Path, api_version: str, https_uri: str, topics: Sequence[str], compliance: Sequence[str]
) -> bool:
    """Write the section into ``path`` (created if missing); True if the file changed."""
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    updated = replace_section(original, webhooks_section(api_version, https_uri, topics, compliance))
    tomllib.loads(updated)  # never leave a file Shopify's CLI cannot read
    if updated == original:
        return False
    path.write_text(updated, encoding="utf-8")
    return True
