"""Issue 2 end to end with boto3: every lifecycle and symmetric operation, and the AWS errors.

Run by crates/keyferry/tests/clients.rs against a fresh `keyferry serve`; reads the endpoint and
credentials from the standard AWS environment variables.
"""
import base64
import os
import sys
import time

import boto3
import botocore
from botocore.config import Config

kms = boto3.client("kms", endpoint_url=os.environ["KEYFERRY_ENDPOINT"],
                   config=Config(retries={"max_attempts": 1}, parameter_validation=False))
checks = 0


def expect_error(code, fn, *args, **kwargs):
    global checks
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == code, f"expected {code}, got {got}: {e}"
        assert status == 400, f"{code} came with HTTP {status}"
        checks += 1
        return e.response["Error"].get("Message", "")
    raise AssertionError(f"expected {code}, call succeeded")


def ok(cond, what):
    global checks
    assert cond, what
    checks += 1


# CreateKey / DescribeKey
meta = kms.create_key(Description="first", Tags=[{"TagKey": "team", "TagValue": "blue"}])["KeyMetadata"]
key_id, arn = meta["KeyId"], meta["Arn"]
ok(arn == f"arn:aws:kms:us-east-1:111122223333:key/{key_id}", "ARN format")
ok(meta["KeyState"] == "Enabled" and meta["Enabled"], "new key enabled")
ok(meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyUsage"] == "ENCRYPT_DECRYPT", "defaults")
ok(meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"], "algorithms")
ok(meta["Origin"] == "AWS_KMS" and meta["KeyManager"] == "CUSTOMER", "origin")
ok(len(meta["CurrentKeyMaterialId"]) == 64, "material id")
ok(isinstance(meta["CreationDate"], type(__import__("datetime").datetime.now())), "timestamp parsed")

# Every identifier form
kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
for ident in (key_id, arn, "alias/app", "arn:aws:kms:us-east-1:111122223333:alias/app"):
    ok(kms.describe_key(KeyId=ident)["KeyMetadata"]["KeyId"] == key_id, f"resolve {ident}")

# Encrypt / Decrypt with context, Decrypt without KeyId
ct = kms.encrypt(KeyId="alias/app", Plaintext=b"hello", EncryptionContext={"a": "1"})
ok(ct["KeyId"] == arn and ct["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", "encrypt response")
pt = kms.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"a": "1"})
ok(pt["Plaintext"] == b"hello" and pt["KeyId"] == arn, "decrypt without KeyId")
ok(pt["KeyMaterialId"] == meta["CurrentKeyMaterialId"], "decrypt names material")
expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=ct["CiphertextBlob"])
expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"a": "2"})
tampered = bytearray(ct["CiphertextBlob"]); tampered[-1] ^= 1
expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(tampered), EncryptionContext={"a": "1"})
expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"garbage-garbage-garbage")
other = kms.create_key()["KeyMetadata"]["KeyId"]
expect_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=ct["CiphertextBlob"], KeyId=other,
             EncryptionContext={"a": "1"})

# ReEncrypt
re = kms.re_encrypt(CiphertextBlob=ct["CiphertextBlob"], SourceEncryptionContext={"a": "1"},
                    DestinationKeyId=other)
ok(re["SourceKeyId"] == arn and re["KeyId"].endswith(other), "re-encrypt ids")
ok(kms.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"hello", "re-encrypted decrypts")

# Data keys and random
dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
ok(len(dk["Plaintext"]) == 32, "data key length")
ok(kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"], "data key decrypts")
dk2 = kms.generate_data_key(KeyId=key_id, NumberOfBytes=7)
ok(len(dk2["Plaintext"]) == 7, "NumberOfBytes")
wp = kms.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_128")
ok("Plaintext" not in wp and len(kms.decrypt(CiphertextBlob=wp["CiphertextBlob"])["Plaintext"]) == 16, "without plaintext")
expect_error("ValidationException", kms.generate_data_key, KeyId=key_id)
ok(len(kms.generate_random(NumberOfBytes=100)["Plaintext"]) == 100, "random")
msg = expect_error("ValidationException", kms.generate_random, NumberOfBytes=1025)
ok("numberOfBytes" in msg, "coral message names the member")

# Enable / Disable
kms.disable_key(KeyId=key_id)
ok(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled", "disabled")
expect_error("DisabledException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
kms.enable_key(KeyId=key_id)
kms.encrypt(KeyId=key_id, Plaintext=b"x")

# Description, tags, policies
kms.update_key_description(KeyId=key_id, Description="renamed")
ok(kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "renamed", "description")
kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "test"}])
tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
ok(tags == {"team": "blue", "env": "test"}, "tags")
kms.untag_resource(KeyId=key_id, TagKeys=["team"])
ok([t["TagKey"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]] == ["env"], "untag")
expect_error("TagException", kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "aws:x", "TagValue": "y"}])
pol = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
ok("arn:aws:iam::111122223333:root" in pol, "default policy")
ok(kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"], "policy names")
newpol = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}'
kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=newpol)
ok(kms.get_key_policy(KeyId=key_id)["Policy"] == newpol, "put policy")
expect_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id, PolicyName="default", Policy="{nope")

# Aliases
expect_error("AlreadyExistsException", kms.create_alias, AliasName="alias/app", TargetKeyId=other)
expect_error("ValidationException", kms.create_alias, AliasName="noprefix", TargetKeyId=other)
expect_error("InvalidAliasNameException", kms.create_alias, AliasName="alias/aws/mine", TargetKeyId=other)
kms.update_alias(AliasName="alias/app", TargetKeyId=other)
ok(kms.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"] == other, "update alias")
al = kms.list_aliases(KeyId=other)["Aliases"]
ok([a["AliasName"] for a in al] == ["alias/app"] and al[0]["AliasArn"].endswith(":alias/app"), "list aliases")
kms.delete_alias(AliasName="alias/app")
expect_error("NotFoundException", kms.describe_key, KeyId="alias/app")
expect_error("NotFoundException", kms.delete_alias, AliasName="alias/app")

# ListKeys paging
for _ in range(3):
    kms.create_key()
seen, marker = [], None
while True:
    page = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
    seen += [k["KeyId"] for k in page["Keys"]]
    if not page["Truncated"]:
        break
    marker = page["NextMarker"]
ok(len(seen) == 5 and len(set(seen)) == 5 and key_id in seen, "paging lists every key once")
expect_error("InvalidMarkerException", kms.list_keys, Marker="not-a-marker")

# Rotation
kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
st = kms.get_key_rotation_status(KeyId=key_id)
ok(st["KeyRotationEnabled"] and st["RotationPeriodInDays"] == 90, "rotation status")
before = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
old_ct = kms.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
kms.rotate_key_on_demand(KeyId=key_id)
after = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
ok(before != after, "on-demand rotation changes material")
ok(kms.decrypt(CiphertextBlob=old_ct)["Plaintext"] == b"old", "old material still decrypts")
rot = kms.list_key_rotations(KeyId=key_id)["Rotations"]
ok(len(rot) == 1 and rot[0]["RotationType"] == "ON_DEMAND" and rot[0]["KeyMaterialId"] == after, "list rotations")
kms.disable_key_rotation(KeyId=key_id)
ok(not kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], "rotation disabled")
expect_error("ValidationException", kms.enable_key_rotation, KeyId=key_id, RotationPeriodInDays=10)

# Deletion
d = kms.schedule_key_deletion(KeyId=other, PendingWindowInDays=7)
ok(d["KeyState"] == "PendingDeletion" and d["PendingWindowInDays"] == 7, "scheduled")
expect_error("KMSInvalidStateException", kms.encrypt, KeyId=other, Plaintext=b"x")
expect_error("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=other)
expect_error("ValidationException", kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=6)
kms.cancel_key_deletion(KeyId=other)
ok(kms.describe_key(KeyId=other)["KeyMetadata"]["KeyState"] == "Disabled", "cancel leaves Disabled")
expect_error("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=other)

# Not found / malformed ids / validation
expect_error("NotFoundException", kms.describe_key, KeyId="1234abcd-12ab-34cd-56ef-1234567890ab")
expect_error("NotFoundException", kms.describe_key, KeyId="not a key")
expect_error("NotFoundException", kms.describe_key, KeyId="arn:aws:kms:eu-west-1:111122223333:key/" + key_id)
expect_error("ValidationException", kms.describe_key, KeyId="")
expect_error("ValidationException", kms.encrypt, KeyId=key_id, Plaintext=b"x" * 4097)
expect_error("ValidationException", kms.create_key, KeySpec="HMAC_256")
expect_error("UnsupportedOperationException", kms.create_key, Origin="AWS_CLOUDHSM")

# EXTERNAL keys wait for material
ext = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
ok(ext["KeyState"] == "PendingImport" and not ext["Enabled"] and "CurrentKeyMaterialId" not in ext, "external key")
expect_error("KMSInvalidStateException", kms.encrypt, KeyId=ext["KeyId"], Plaintext=b"x")
expect_error("KMSInvalidStateException", kms.enable_key, KeyId=ext["KeyId"])

print(f"{checks} checks passed")
