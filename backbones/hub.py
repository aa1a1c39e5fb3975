"""A pretrained folder on the Hugging Face Hub: download (through its cache) and upload.

Everything goes through ``huggingface_hub``, so its cache (``HF_HUB_CACHE``, ``HF_HOME``) and
offline mode (``HF_HUB_OFFLINE=1``: the cache only, no request) apply as for any Hub model.
Only the folder's three files are fetched (:mod:`backbones.pretrained_folder`).
"""

from __future__ import annotations

import re
from pathlib import Path

from backbones.optional import require
from backbones.pretrained import PretrainedError
from backbones.pretrained_folder import CARD, CONFIG, WEIGHTS

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
"""``user/name`` as the Hub spells repository ids."""

FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".onnx", ".pt2", ".safetensors", ".json")
"""A missing path ending in one of these is a missing file, never a Hub id."""


def is_repo_id(text: str) -> bool:
    """Whether ``text`` reads as a Hub repository id (``user/name``) rather than a file name."""
    return bool(REPO_ID.match(text)) and not text.lower().endswith(FILE_SUFFIXES)


def download(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot folder of ``repo_id`` (fetched into the Hub cache unless already there)."""
    hub = require("huggingface_hub", f"the Hub repository id {repo_id!r}")
    try:
        folder = hub.snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG, WEIGHTS, CARD])
    except Exception as err:  # offline misses, 404s, network errors: all one line
        constants = require("huggingface_hub.constants", "the Hugging Face Hub")
        offline = " (HF_HUB_OFFLINE is set: only the local cache was searched)" if constants.HF_HUB_OFFLINE else ""
        raise PretrainedError(
            f"{repo_id}: no such file or folder, and not available from the Hugging Face Hub{offline}: "
            f"{type(err).__name__}"
        ) from None
    return Path(folder)


def upload(folder: Path, repo_id: str, private: bool = False) -> str:
    """Create ``repo_id`` (if needed) and upload ``folder``'s files; the commit's URL."""
    hub = require("huggingface_hub", "--push-to-hub")
    api = hub.HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                             allow_patterns=[CONFIG, WEIGHTS, CARD], commit_message="pointdwc export")
    return str(getattr(info, "commit_url", info))
