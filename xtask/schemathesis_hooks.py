"""schemathesis hooks of `cargo xtask schema`: the protobuf bodies of Connect Push
(application/proto) and OTLP/HTTP (application/x-protobuf) are sent as raw bytes, as
application/octet-stream bodies are."""

import schemathesis

schemathesis.serializer.alias(
    ["application/proto", "application/x-protobuf"], "application/octet-stream"
)
