"""Serializers schemathesis lacks for the media types the API accepts.

`POST /v1/positions` takes `application/x-ndjson`: one ping a line, each line the JSON the
schema describes. Schemathesis generates that value (valid or not) and this writes it as
one line, so the operation is exercised in all three of its formats.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if value is None:
        return None
    return json.dumps(value).encode() + b"\n"
