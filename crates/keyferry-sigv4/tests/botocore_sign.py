"""Sign a request with real botocore (SigV4Auth) as a test oracle for keyferry-sigv4.

stdin:  {"method","url","headers":[[k,v],..],"body":str,"access_key","secret_key",
         "token":str|null,"region","service","time":"YYYYMMDDTHHMMSSZ"}
stdout: {"headers":[[k,v],..]} -- the headers after signing (including Authorization).
"""
import datetime
import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

req = json.load(sys.stdin)
fixed = datetime.datetime.strptime(req["time"], "%Y%m%dT%H%M%SZ")
botocore.auth.get_current_datetime = lambda *a, **k: fixed

aws_req = AWSRequest(
    method=req["method"],
    url=req["url"],
    headers=dict(req["headers"]),
    data=req["body"].encode("utf-8"),
)
creds = Credentials(req["access_key"], req["secret_key"], req.get("token"))
botocore.auth.SigV4Auth(creds, req["service"], req["region"]).add_auth(aws_req)
# botocore adds Host only inside the canonical request; send it like an HTTP client would.
out = [[k, v] for k, v in aws_req.headers.items()]
if not any(k.lower() == "host" for k, _ in out):
    from urllib.parse import urlsplit
    out.append(["Host", urlsplit(req["url"]).netloc])
json.dump({"headers": out}, sys.stdout)
