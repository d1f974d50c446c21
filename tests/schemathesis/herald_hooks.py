"""Schemathesis hooks for Herald (loaded by scripts/schemathesis through SCHEMATHESIS_HOOKS).

POST /v1/bulk/user/import/ takes NDJSON (application/x-ndjson), a media type Schemathesis cannot
serialize by itself: a generated string goes on the wire as its UTF-8 bytes, anything else as one
JSON document per line (a list's items) or a single JSON line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8")}
    items = value if isinstance(value, list) else [value]
    return {"data": "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")}
