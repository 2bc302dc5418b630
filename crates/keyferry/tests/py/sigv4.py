"""SigV4 rejection cases against `keyferry serve`, with raw HTTP requests signed by botocore."""
import datetime
import json
import os
import urllib.error
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ENDPOINT = os.environ["KEYFERRY_ENDPOINT"]
AKID = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
checks = 0


def send(headers, body):
    req = urllib.request.Request(ENDPOINT + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def signed(op="ListKeys", body=b"{}", akid=AKID, secret=SECRET, region="us-east-1", service="kms", when=None,
           mutate=None):
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + op})
    auth = SigV4Auth(Credentials(akid, secret), service, region)
    import botocore.auth as ba
    real = ba.get_current_datetime
    if when is not None:
        ba.get_current_datetime = lambda *a, **k: when.replace(tzinfo=None)  # sign with another clock
    try:
        auth.add_auth(req)
    finally:
        ba.get_current_datetime = real
    headers = dict(req.headers.items())
    if mutate:
        mutate(headers)
    return headers, body


def expect(code, status, headers, body, contains=None):
    global checks
    got_status, got = send(headers, body)
    assert got.get("__type") == code, f"expected {code}, got {got_status} {got}"
    assert got_status == status, f"{code}: HTTP {got_status}"
    if contains:
        assert contains in got.get("message", ""), f"{code}: message {got.get('message')!r} lacks {contains!r}"
    checks += 1


# The good request works.
status, body = send(*signed())
assert status == 200 and "Keys" in body, (status, body)
checks += 1

expect("MissingAuthenticationTokenException", 403, {"Content-Type": "application/x-amz-json-1.1",
       "X-Amz-Target": "TrentService.ListKeys"}, b"{}")
expect("IncompleteSignatureException", 400, *signed(mutate=lambda h: h.__setitem__("Authorization", "AWS4-HMAC-SHA256 garbage")))
expect("UnrecognizedClientException", 400, *signed(akid="AKIAUNKNOWNKEY000000"),
       contains="The security token included in the request is invalid.")
expect("InvalidSignatureException", 400, *signed(secret="wrong-secret"),
       contains="The request signature we calculated does not match")
h, b = signed(body=b'{"Limit": 5}')
expect("InvalidSignatureException", 400, h, b'{"Limit": 6}')
expect("InvalidSignatureException", 400, *signed(mutate=lambda h: h.__setitem__("X-Amz-Target", "TrentService.CreateKey")))
expect("InvalidSignatureException", 400, *signed(region="eu-west-1"), contains="Credential should be scoped to a valid region")
expect("InvalidSignatureException", 400, *signed(service="s3"), contains="Credential should be scoped to correct service")
old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
expect("InvalidSignatureException", 400, *signed(when=old), contains="Signature expired")
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=6)
expect("InvalidSignatureException", 400, *signed(when=future), contains="Signature not yet current")

# Protocol errors after authentication.
expect("UnknownOperationException", 400, *signed(op="NoSuchThing"))
expect("SerializationException", 400, *signed(op="DescribeKey", body=b"{not json"))
expect("ValidationException", 400, *signed(op="DescribeKey", body=b"{}"), contains="keyId")
expect("ValidationException", 400, *signed(op="CreateKey", body=b'{"KeySpec": "NOPE"}'), contains="keySpec")
expect("ValidationException", 400, *signed(op="ListKeys", body=b'{"Limit": "ten"}'))
big = json.dumps({"Description": "x" * 70000}).encode()
status, got = send(*signed(op="CreateKey", body=big))
assert status == 400 and got.get("__type") in ("ValidationException",), (status, got)
checks += 1
print(f"{checks} checks passed")
