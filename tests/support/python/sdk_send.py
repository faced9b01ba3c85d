"""Sends messages with the Python sender SDK (sdk/python) and prints the outcome as JSON.

Usage: sdk_send.py '<json>' where the JSON has target, api_key, app_id and payloads, and
optionally master_secret, key_version, message_ids, max_attempts, initial_backoff.
Prints {"results": [...]} or {"error": {"code", "reason", "details", "attempts"}}.
Exit code 3 when grpcio, protobuf or cryptography is missing.
"""

import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "sdk", "python")))
try:
    from nexus_sdk import SendError, Sender
except ImportError as missing:  # pragma: no cover - environment dependent
    print(f"python sender SDK unavailable: {missing}", file=sys.stderr)
    sys.exit(3)

args = json.loads(sys.argv[1])
sender = Sender(
    args["target"],
    api_key=args["api_key"],
    app_id=args["app_id"],
    master_secret=args.get("master_secret"),
    key_version=args.get("key_version", 1),
    max_attempts=args.get("max_attempts", 5),
    initial_backoff=args.get("initial_backoff", 0.2),
)
try:
    results = sender.send_batch(args["payloads"], args.get("message_ids"))
    print(json.dumps({"results": [r.__dict__ for r in results]}))
except SendError as err:
    print(json.dumps({"error": {"code": err.code.name, "reason": err.reason, "details": err.details, "attempts": err.attempts}}))
finally:
    sender.close()
