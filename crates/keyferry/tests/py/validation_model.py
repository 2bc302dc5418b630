"""Every operation's model constraints, from botocore's KMS service model, against the real
`keyferry serve`, with boto3 (its client-side validation off, so the server sees the bad input).

For each operation Keyferry implements and each top-level member of its input:
- a required member left out: `1 validation error detected: Value null at '<member>' failed to
  satisfy constraint: Member must not be null`;
- an enum member with a value outside the set: `... Value 'NOT_A_VALUE' at '<member>' failed to
  satisfy constraint: Member must satisfy enum value set: [<the model's values, in its order>]`;
- a string or blob longer than its maximum, shorter than its minimum; an integer out of range:
  AWS's length and range sentences (blob values are not echoed).
The other members carry valid values, so each request has exactly one violation. Prints a summary;
exits non-zero listing every difference.
"""
import gzip
import json
import os
import re
import sys

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["KEYFERRY_ENDPOINT"]
MODEL = os.path.join(os.path.dirname(botocore.__file__), "data/kms/2014-11-01/service-2.json.gz")
model = json.load(gzip.open(MODEL))
shapes = model["shapes"]
kms = boto3.client("kms", region_name="us-east-1", endpoint_url=EP,
                   config=Config(parameter_validation=False, retries={"max_attempts": 1}))


def lower(name):
    return name[0].lower() + name[1:]


def valid(shape_name):
    """A value that satisfies the shape's constraints."""
    s = shapes[shape_name]
    t = s["type"]
    if "enum" in s:
        return s["enum"][0]
    if t == "string":
        return "a" * max(1, s.get("min", 1))
    if t == "blob":
        return b"a" * max(1, s.get("min", 1))
    if t in ("integer", "long"):
        return max(1, s.get("min", 1))
    if t == "boolean":
        return False
    if t == "timestamp":
        import datetime
        return datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    if t == "list":
        n = s.get("min", 0)
        return [valid(s["member"]["shape"]) for _ in range(n)]
    if t == "map":
        return {}
    if t == "structure":
        return {m: valid(s["members"][m]["shape"]) for m in s.get("required", [])}
    raise ValueError(t)


def base(input_shape):
    s = shapes[input_shape]
    return {m: valid(s["members"][m]["shape"]) for m in s.get("required", [])}


cases = []  # (operation, member, params, expected message)
for op, spec in sorted(model["operations"].items()):
    if "input" not in spec:
        continue
    ishape = spec["input"]["shape"]
    s = shapes[ishape]
    for member in s.get("required", []):
        params = base(ishape)
        del params[member]
        cases.append((op, member, params, f"1 validation error detected: Value null at '{lower(member)}' "
                                  "failed to satisfy constraint: Member must not be null"))
    for member, ref in s["members"].items():
        ms = shapes[ref["shape"]]
        where = lower(member)
        if "enum" in ms:
            params = base(ishape)
            params[member] = "NOT_A_VALUE"
            cases.append((op, member, params, "1 validation error detected: Value 'NOT_A_VALUE' at "
                                      f"'{where}' failed to satisfy constraint: Member must satisfy "
                                      f"enum value set: [{', '.join(ms['enum'])}]"))
        elif ms["type"] == "string" and "max" in ms:
            params = base(ishape)
            v = "a" * (ms["max"] + 1)
            params[member] = v
            cases.append((op, member, params, f"1 validation error detected: Value '{v}' at '{where}' failed "
                                      "to satisfy constraint: Member must have length less than or "
                                      f"equal to {ms['max']}"))
        elif ms["type"] == "blob" and "max" in ms:
            params = base(ishape)
            params[member] = b"a" * (ms["max"] + 1)
            cases.append((op, member, params, f"1 validation error detected: Value at '{where}' failed to "
                                      "satisfy constraint: Member must have length less than or "
                                      f"equal to {ms['max']}"))
        if "enum" not in ms and ms["type"] in ("string", "blob") and ms.get("min", 0) >= 1:
            params = base(ishape)
            params[member] = "" if ms["type"] == "string" else b""
            shown = "Value '' at" if ms["type"] == "string" else "Value at"
            cases.append((op, member, params, f"1 validation error detected: {shown} '{where}' failed "
                                              "to satisfy constraint: Member must have length greater "
                                              f"than or equal to {ms['min']}"))
        if ms["type"] == "integer" and "min" in ms:
            params = base(ishape)
            params[member] = ms["min"] - 1
            cases.append((op, member, params, f"1 validation error detected: Value '{ms['min'] - 1}' at "
                                              f"'{where}' failed to satisfy constraint: Member must have "
                                              f"value greater than or equal to {ms['min']}"))
        if ms["type"] == "integer" and "max" in ms:
            params = base(ishape)
            params[member] = ms["max"] + 1
            cases.append((op, member, params, f"1 validation error detected: Value '{ms['max'] + 1}' at "
                                      f"'{where}' failed to satisfy constraint: Member must have value "
                                      f"less than or equal to {ms['max']}"))

# Where Keyferry answers otherwise, on purpose (docs/decisions.md, K9): a policy longer than the
# 64 KiB request body cap is refused before its member is checked.
BODY_CAP = "The request body must be at most 65536 bytes."
KNOWN = {("CreateKey", "Policy"), ("PutKeyPolicy", "Policy"), ("ReplicateKey", "Policy")}

failures, skipped, checked = [], set(), 0
for op, member, params, want in cases:
    method = getattr(kms, botocore.xform_name(op))
    try:
        method(**params)
        got, status = ("(success)", None), 200
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["Error"].get("Message"))
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        if got[0] == "UnsupportedOperationException" and (got[1] or "").startswith("Keyferry does not implement"):
            skipped.add(op)
            continue
    checked += 1
    if (op, member) in KNOWN and len(params.get(member) or "") > 65536:
        want = BODY_CAP
    if got != ("ValidationException", want) or status != 400:
        shown = {k: (v if not isinstance(v, (bytes, str)) or len(v) < 40 else f"<{len(v)}>")
                 for k, v in params.items()}
        text = f"{op} {shown}\n   got  {status} {got}\n   want 400 ('ValidationException', {want!r})"
        failures.append(re.sub(r"a{40,}", lambda m: f"<a x{len(m.group(0))}>", text))

print(f"{checked} model cases checked; not implemented: {sorted(skipped)}")
if failures:
    print(f"{len(failures)} differ:")
    print("\n".join(failures))
    sys.exit(1)
print("checks passed")
