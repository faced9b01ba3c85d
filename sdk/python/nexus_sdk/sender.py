"""The Nexus sender: sends messages of one sender app to the integration service over gRPC."""

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import grpc
from google.protobuf import struct_pb2

from nexus_sdk._gen.nexus.integration.v1 import integration_service_pb2 as pb
from nexus_sdk._gen.nexus.integration.v1 import integration_service_pb2_grpc as pb_grpc
from nexus_sdk.crypto import seal_payload

#: Codes retried with backoff: the hub (or an edge agent) is briefly unreachable or busy.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


@dataclass(frozen=True)
class SendResult:
    """What the hub answered for one message."""

    #: The hub's message id (the first one's when this was a duplicate).
    message_id: str
    #: The sender's id for the message (``client_message_id``), generated when not given.
    client_message_id: str
    #: True when the hub had already accepted this client message id (within 24 h).
    duplicate: bool
    #: Workflows the message was queued for (0 when an edge agent queued it for later).
    workflows: int


class SendError(Exception):
    """A message was refused (bad payload, wrong key, …) or the retries ran out.

    ``code`` is the gRPC status code, ``reason`` the ``ErrorInfo.reason`` when the server sent one.
    """

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "", attempts: int = 1):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.reason = reason
        self.details = message
        self.attempts = attempts


def _reason(err: grpc.RpcError) -> str:
    """ErrorInfo.reason from the grpc-status-details-bin trailer, without googleapis protos."""
    try:
        for key, value in err.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                return _error_info_reason(value)
    except Exception:  # pragma: no cover - best effort
        return ""
    return ""


def _read_varint(buf: bytes, i: int):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        tag, i = _read_varint(buf, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            val, i = _read_varint(buf, i)
        elif wire == 2:
            n, i = _read_varint(buf, i)
            val, i = buf[i : i + n], i + n
        elif wire == 5:
            val, i = buf[i : i + 4], i + 4
        elif wire == 1:
            val, i = buf[i : i + 8], i + 8
        else:
            return
        yield num, wire, val


def _error_info_reason(status_bin: bytes) -> str:
    # google.rpc.Status { details = 3: repeated Any { type_url = 1, value = 2 } }
    for num, wire, val in _fields(status_bin):
        if num == 3 and wire == 2:
            type_url, value = "", b""
            for n2, w2, v2 in _fields(val):
                if n2 == 1 and w2 == 2:
                    type_url = v2.decode("utf-8", "replace")
                elif n2 == 2 and w2 == 2:
                    value = v2
            if type_url.endswith("google.rpc.ErrorInfo"):
                for n3, w3, v3 in _fields(value):
                    if n3 == 1 and w3 == 2:
                        return v3.decode("utf-8", "replace")
    return ""


class Sender:
    """Sends messages of one sender app to the integration service (the hub or an edge agent).

    >>> sender = Sender("127.0.0.1:8080", api_key="nxs_…", app_id="app_…")
    >>> sender.send({"order_id": "o-1", "total": 12.5}).message_id

    ``master_secret`` (base64, from CreateSenderApp or RotateMasterSecret) turns on AES-256-GCM
    payload encryption with that ``key_version``. Every message gets a ``client_message_id``
    (a UUID unless given), so a retry after UNAVAILABLE is accepted once by the hub's dedupe.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str,
        app_id: str,
        tenant_id: str = "",
        master_secret: Optional[str] = None,
        key_version: int = 1,
        secure: bool = False,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        initial_backoff: float = 0.2,
        max_backoff: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not app_id:
            raise ValueError("app_id is required")
        if not api_key:
            raise ValueError("api_key is required (a Nexus API key, or an edge agent's app key)")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        target = target.removeprefix("http://").removeprefix("https://").rstrip("/")
        # Reconnect no slower than our own backoff, so a hub that comes back is used at once.
        options = [
            ("grpc.initial_reconnect_backoff_ms", int(initial_backoff * 1000) or 100),
            ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000) or 1000),
        ]
        if secure or credentials is not None:
            self._channel = grpc.secure_channel(target, credentials or grpc.ssl_channel_credentials(), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.IntegrationServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.app_id = app_id
        self.tenant_id = tenant_id
        self.master_secret = master_secret
        self.key_version = key_version
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def _request(self, payload: Dict[str, Any], message_id: str) -> pb.IngestRequest:
        body = seal_payload(self.app_id, self.master_secret, self.key_version, payload) if self.master_secret else payload
        st = struct_pb2.Struct()
        st.update(body)
        return pb.IngestRequest(tenant_id=self.tenant_id, app_id=self.app_id, payload=st, client_message_id=message_id)

    def send(self, payload: Dict[str, Any], message_id: Optional[str] = None) -> SendResult:
        """Sends one message (a JSON object); retries UNAVAILABLE with exponential backoff.

        Raises :class:`SendError` when the message is refused or the attempts run out.
        """
        if not isinstance(payload, dict):
            raise TypeError("payload must be a dict (a JSON object)")
        mid = message_id or str(uuid.uuid4())
        req = self._request(payload, mid)
        delay = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            try:
                res = self._stub.Ingest(req, metadata=self._metadata, timeout=self.timeout)
                return SendResult(res.message_id, mid, res.duplicate, res.workflows)
            except grpc.RpcError as err:
                code = err.code()
                if code in RETRYABLE and attempt < self.max_attempts:
                    self._sleep(min(self.max_backoff, delay) * (0.5 + random.random() / 2))
                    delay *= 2
                    continue
                raise SendError(code, err.details() or "", _reason(err), attempt) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def send_batch(
        self, payloads: Iterable[Dict[str, Any]], message_ids: Optional[Sequence[str]] = None, stop_on_error: bool = True
    ) -> List[Any]:
        """Sends messages in order, each with its own retries.

        Returns a list of :class:`SendResult`; with ``stop_on_error=False`` a refused message's
        entry is its :class:`SendError` and the rest are still sent.
        """
        out: List[Any] = []
        for i, payload in enumerate(payloads):
            mid = message_ids[i] if message_ids is not None else None
            try:
                out.append(self.send(payload, mid))
            except SendError as err:
                if stop_on_error:
                    raise
                out.append(err)
        return out
