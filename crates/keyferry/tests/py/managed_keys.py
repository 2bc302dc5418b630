"""AWS managed keys against the real `keyferry serve`, with boto3.

The predefined alias alias/aws/ebs is listed without a target; DescribeKey through it creates
the AWS managed key (KeyManager AWS, AWS's description, yearly rotation); the account may read
it but not change it (AccessDeniedException); a principal acting for EC2 (identities file
`service = "ec2.amazonaws.com"`) encrypts and decrypts through the alias, a direct caller may not.
"""
import os
import sys

import boto3
from botocore.exceptions import ClientError

EP = os.environ["KEYFERRY_ENDPOINT"]
A = "111122223333"
CHECKS = 0


def ok(cond, what):
    global CHECKS
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    CHECKS += 1


def client(akid, secret):
    return boto3.client("kms", region_name="us-east-1", endpoint_url=EP,
                        aws_access_key_id=akid, aws_secret_access_key=secret)


def refused(fn, code, what, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        ok(got == code, f"{what}: expected {code}, got {got}: {e}")
        return e.response["Error"].get("Message", "")
    ok(False, f"{what}: expected {code}, the call succeeded")


root = client("AKIAMANAGEDROOT00001", "managed-root-secret")
ec2 = client("AKIAMANAGEDEC2000001", "managed-ec2-secret")
user = client("AKIAMANAGEDUSER00001", "managed-user-secret")

aliases = root.list_aliases()["Aliases"]
ebs = [a for a in aliases if a["AliasName"] == "alias/aws/ebs"]
ok(len(ebs) == 1 and "TargetKeyId" not in ebs[0], f"alias/aws/ebs listed without a target: {ebs}")
ok(ebs[0]["AliasArn"] == f"arn:aws:kms:us-east-1:{A}:alias/aws/ebs", "alias ARN")

meta = root.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
ok(meta["KeyManager"] == "AWS", f"KeyManager AWS: {meta}")
ok(meta["Description"] == "Default key that protects my EBS volumes when no other key is defined",
   meta["Description"])
key_id, arn = meta["KeyId"], meta["Arn"]
status = root.get_key_rotation_status(KeyId=key_id)
ok(status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 365, f"rotation {status}")
ok([a.get("TargetKeyId") for a in root.list_aliases(KeyId=key_id)["Aliases"]] == [key_id],
   "ListAliases by key")

msg = refused(root.disable_key, "AccessDeniedException", "DisableKey", KeyId=key_id)
ok(msg == f"User: arn:aws:iam::{A}:root is not authorized to perform: kms:DisableKey on resource: {arn} "
   "because no resource-based policy allows the kms:DisableKey action", msg)
refused(root.schedule_key_deletion, "AccessDeniedException", "ScheduleKeyDeletion",
        KeyId=key_id, PendingWindowInDays=7)
refused(root.disable_key_rotation, "AccessDeniedException", "DisableKeyRotation", KeyId=key_id)
refused(root.put_key_policy, "AccessDeniedException", "PutKeyPolicy", KeyId=key_id,
        PolicyName="default", Policy=root.get_key_policy(KeyId=key_id)["Policy"])
refused(root.create_alias, "InvalidAliasNameException", "reserved prefix",
        AliasName="alias/aws/ebs-mine", TargetKeyId=root.create_key()["KeyMetadata"]["KeyId"])

# Through the service: allowed; directly: refused.
ct = ec2.encrypt(KeyId="alias/aws/ebs", Plaintext=b"volume key",
                 EncryptionContext={"aws:ebs:id": "vol-0abc"})
ok(ct["KeyId"] == arn, "encrypted under the managed key")
pt = ec2.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"aws:ebs:id": "vol-0abc"})
ok(pt["Plaintext"] == b"volume key", "decrypted through EC2")
dk = ec2.generate_data_key(KeyId="alias/aws/ebs", KeySpec="AES_256")
ok(len(dk["Plaintext"]) == 32, "data key through EC2")
refused(user.encrypt, "AccessDeniedException", "direct Encrypt", KeyId="alias/aws/ebs", Plaintext=b"x")
refused(root.encrypt, "AccessDeniedException", "direct Encrypt as root", KeyId="alias/aws/ebs",
        Plaintext=b"x")

print(f"{CHECKS} checks passed")
