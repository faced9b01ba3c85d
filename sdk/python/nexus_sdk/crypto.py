"""ING-05 payload envelopes, byte-compatible with the hub (services/integration/domain/payload-crypto.ts).

The JSON text of the payload is sealed with AES-256-GCM under the app's master secret (base64 of
32 bytes), a random 12-byte IV, and the app id (UTF-8) as additional authenticated data, so an
envelope made for one app does not open for another::

    {"enc": "aes-256-gcm", "kv": 1, "iv": "<b64 12 bytes>", "ct": "<b64>", "tag": "<b64 16 bytes>"}
"""

import base64
import json
import os
from typing import Any, Dict

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALGORITHM = "aes-256-gcm"


def _key(master_secret: str) -> bytes:
    try:
        key = base64.b64decode(master_secret, validate=True)
    except (ValueError, TypeError) as err:
        raise ValueError("master_secret must be base64 of 32 bytes") from err
    if len(key) != 32:
        raise ValueError("master_secret must be base64 of 32 bytes")
    return key


def seal_payload(app_id: str, master_secret: str, key_version: int, payload: Dict[str, Any]) -> Dict[str, Any]:
    """Seals a JSON object for app ``app_id`` with master secret version ``key_version``."""
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict (a JSON object)")
    iv = os.urandom(12)
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sealed = AESGCM(_key(master_secret)).encrypt(iv, text, app_id.encode("utf-8"))
    ct, tag = sealed[:-16], sealed[-16:]
    return {
        "enc": ALGORITHM,
        "kv": key_version,
        "iv": base64.b64encode(iv).decode("ascii"),
        "ct": base64.b64encode(ct).decode("ascii"),
        "tag": base64.b64encode(tag).decode("ascii"),
    }


def open_payload(app_id: str, master_secret: str, envelope: Dict[str, Any]) -> Dict[str, Any]:
    """Opens an envelope (what the hub does); raises ValueError when it does not open."""
    if envelope.get("enc") != ALGORITHM:
        raise ValueError(f'envelope "enc" must be "{ALGORITHM}"')
    iv = base64.b64decode(envelope["iv"])
    sealed = base64.b64decode(envelope["ct"]) + base64.b64decode(envelope["tag"])
    try:
        text = AESGCM(_key(master_secret)).decrypt(iv, sealed, app_id.encode("utf-8"))
    except Exception as err:  # cryptography raises InvalidTag
        raise ValueError("the envelope does not open with this master secret (wrong key or altered data)") from err
    return json.loads(text.decode("utf-8"))
