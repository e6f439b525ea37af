"""Schemathesis hooks for test_web_schemathesis.py (loaded through SCHEMATHESIS_HOOKS): a
serializer for STOW-RS's multipart/related bodies, which schemathesis does not know. The
generated value becomes the one application/dicom part of the body."""
import json
import uuid

import schemathesis


@schemathesis.serializer("multipart/related")
def multipart_related(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str):
        data = value.encode("utf-8", errors="ignore")
    else:
        data = json.dumps(value, default=str).encode()
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data +
            f"\r\n--{boundary}--\r\n".encode())
    return {"data": body, "headers": {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}}
