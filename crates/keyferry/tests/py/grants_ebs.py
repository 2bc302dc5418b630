"""EBS-like grant flow against the real `keyferry serve`, with boto3 and several identities.

An identity acting for EC2 (identities file `service = "ec2.amazonaws.com"`), listed in the
console's "Allow attachment of persistent resources" statement, creates a grant with an
EncryptionContextSubset constraint for a role; a session of the role uses the grant token at
once; a call outside the constraint is refused; the same kind of key user without `service` is
refused CreateGrant; after retire and revoke the grantee is refused.
"""
import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

EP = os.environ["KEYFERRY_ENDPOINT"]
A = "111122223333"
CHECKS = 0


def client(service, akid, secret, token=None):
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=EP,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def ok(cond, what):
    global CHECKS
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    CHECKS += 1


def refused(fn, code, what, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        ok(got == code, f"{what}: expected {code}, got {got}: {e}")
        return e.response["Error"].get("Message", "")
    ok(False, f"{what}: expected {code}, the call succeeded")


root = client("kms", "AKIAEBSROOT000000001", "ebs-root-secret")
svc = client("kms", "AKIAEBSSVC0000000001", "ebs-svc-secret")
user = client("kms", "AKIAEBSUSER000000001", "ebs-user-secret")
admin = client("kms", "AKIAEBSADMIN00000001", "ebs-admin-secret")
launcher = client("sts", "AKIAEBSLAUNCH0000001", "ebs-launch-secret")

users = [f"arn:aws:iam::{A}:user/volume-user", f"arn:aws:iam::{A}:user/volume-svc"]
policy = {
    "Version": "2012-10-17",
    "Id": "key-consolepolicy-3",
    "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{A}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
         "Principal": {"AWS": [f"arn:aws:iam::{A}:user/key-admin"]},
         "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                    "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                    "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                    "kms:CancelKeyDeletion"],
         "Resource": "*"},
        {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": users},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                    "kms:DescribeKey"],
         "Resource": "*"},
        {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
         "Principal": {"AWS": users},
         "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    ],
}
key = root.create_key(Policy=json.dumps(policy), Description="ebs-like")["KeyMetadata"]
key_arn = key["Arn"]
role_arn = f"arn:aws:iam::{A}:role/instance"
grant_args = dict(
    KeyId=key_arn,
    GranteePrincipal=role_arn,
    RetiringPrincipal=f"arn:aws:iam::{A}:user/volume-svc",
    Operations=["Decrypt", "Encrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
                "ReEncryptTo", "DescribeKey", "CreateGrant"],
    Constraints={"EncryptionContextSubset": {"aws:ebs:id": "vol-0abc"}},
)

# The key user itself, not acting for a service, is refused.
msg = refused(user.create_grant, "AccessDeniedException", "CreateGrant without service", **grant_args)
ok(msg.startswith(f"User: arn:aws:iam::{A}:user/volume-user is not authorized to perform: kms:CreateGrant on resource: {key_arn}"), msg)
refused(user.list_grants, "AccessDeniedException", "ListGrants without service", KeyId=key_arn)

# Acting for EC2: allowed.
g = svc.create_grant(**grant_args)
token, grant_id = g["GrantToken"], g["GrantId"]
ok(len(grant_id) == 64, "grant id is 64 hex digits")
listed = svc.list_grants(KeyId=key_arn)["Grants"]
ok([x["GrantId"] for x in listed] == [grant_id], "ListGrants shows the grant")
ok(listed[0]["Constraints"] == {"EncryptionContextSubset": {"aws:ebs:id": "vol-0abc"}}, "constraints listed")

# The instance role uses the token at once.
creds = launcher.assume_role(RoleArn=role_arn, RoleSessionName="i-0123")["Credentials"]
inst = client("kms", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
ec = {"aws:ebs:id": "vol-0abc"}
dk = inst.generate_data_key_without_plaintext(KeyId=key_arn, KeySpec="AES_256",
                                               EncryptionContext=ec, GrantTokens=[token])
pt = inst.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ec, GrantTokens=[token])
ok(len(pt["Plaintext"]) == 32, "grantee decrypts the data key")
ok(inst.describe_key(KeyId=key_arn)["KeyMetadata"]["Arn"] == key_arn, "DescribeKey through the grant")

# Outside the constraint, or an operation the grant lacks: refused.
msg = refused(inst.generate_data_key_without_plaintext, "AccessDeniedException", "other volume",
              KeyId=key_arn, KeySpec="AES_256", EncryptionContext={"aws:ebs:id": "vol-0other"})
ok(msg.startswith(f"User: arn:aws:sts::{A}:assumed-role/instance/i-0123 is not authorized to perform: kms:GenerateDataKeyWithoutPlaintext"), msg)
refused(inst.generate_data_key, "AccessDeniedException", "operation not in the grant",
        KeyId=key_arn, KeySpec="AES_256", EncryptionContext=ec)
refused(inst.encrypt, "InvalidGrantTokenException", "forged token",
        KeyId=key_arn, Plaintext=b"x", EncryptionContext=ec, GrantTokens=[token[:-4] + "AAAA"])

# The grantee passes on part of its grant (CreateGrant from a grant): only stricter.
child = inst.create_grant(KeyId=key_arn, GranteePrincipal=f"arn:aws:iam::{A}:user/volume-user",
                          Operations=["Decrypt"],
                          Constraints={"EncryptionContextEquals": {"aws:ebs:id": "vol-0abc"}})
refused(inst.create_grant, "AccessDeniedException", "child grant with a weaker constraint",
        KeyId=key_arn, GranteePrincipal=f"arn:aws:iam::{A}:user/volume-user", Operations=["Decrypt"])

# The retiring principal retires by token; the grantee is refused afterwards.
retirable = svc.list_retirable_grants(RetiringPrincipal=f"arn:aws:iam::{A}:user/volume-svc")["Grants"]
ok(grant_id in [x["GrantId"] for x in retirable], "ListRetirableGrants shows the grant")
svc.retire_grant(GrantToken=token)
refused(inst.decrypt, "AccessDeniedException", "after retire",
        CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ec)

# Revoke: the key administrator revokes the child grant; its grantee is refused afterwards.
admin.revoke_grant(KeyId=key_arn, GrantId=child["GrantId"])
ok(all(x["GrantId"] != child["GrantId"] for x in admin.list_grants(KeyId=key_arn)["Grants"]), "revoked grant gone")
g2 = svc.create_grant(**grant_args)
inst.encrypt(KeyId=key_arn, Plaintext=b"x", EncryptionContext=ec)
refused(user.revoke_grant, "AccessDeniedException", "revoke without service", KeyId=key_arn, GrantId=g2["GrantId"])
svc.revoke_grant(KeyId=key_arn, GrantId=g2["GrantId"])
refused(inst.encrypt, "AccessDeniedException", "after revoke", KeyId=key_arn, Plaintext=b"x", EncryptionContext=ec)

print(f"{CHECKS} checks passed")
