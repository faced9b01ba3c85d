"""Nexus sender SDK (Python): ``Sender`` sends sender-app messages to the integration service.

The gRPC stubs in ``nexus_sdk._gen`` are generated from the repository's proto/ by
``generate.sh`` (protoc + grpc_python_plugin).
"""

from nexus_sdk.crypto import open_payload, seal_payload
from nexus_sdk.sender import SendError, SendResult, Sender

__all__ = ["Sender", "SendResult", "SendError", "seal_payload", "open_payload"]
__version__ = "0.1.0"
