"""Issue 9 end to end with boto3: who may use a key. Run by crates/keyferry/tests/access.rs
against `keyferry serve --identities FILE` (the file is in access.rs: account 111122223333 with
its root, users keyadmin/keyuser/dev/mallory and roles app/ebs; account 444455556666 with bob).

Checks: key administrators vs key users from the console's policy; identity policies through the
default key policy; explicit deny over allow; the lockout safety check; malformed policies;
AccessDeniedException texts; STS GetCallerIdentity/AssumeRole and session tokens.
"""
import json
import os
import sys

import boto3
import botocore
from botocore.config import Config

ENDPOINT = os.environ["KEYFERRY_ENDPOINT"]
ACCOUNT = "111122223333"
OTHER = "444455556666"
CFG = Config(retries={"max_attempts": 1}, parameter_validation=False)
KEYS = {
    "root": ("AKIAOWNERROOT0000001", "owner-root-secret"),
    "keyadmin": ("AKIAKEYADMIN00000001", "keyadmin-secret"),
    "keyuser": ("AKIAKEYUSER000000001", "keyuser-secret"),
    "dev": ("AKIADEVELOPER0000001", "dev-secret"),
    "mallory": ("AKIAMALLORY000000001", "mallory-secret"),
    "bob": ("AKIABOBOTHER00000001", "bob-secret"),
}
checks = 0


def client(who, service="kms", token=None, akid=None, secret=None):
    a, s = KEYS[who] if who else (akid, secret)
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=a, aws_secret_access_key=s,
                        aws_session_token=token, config=CFG)


def expect_error(code, fn, *args, text=None, status=400, **kwargs):
    global checks
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        message = e.response["Error"].get("Message", "")
        assert got == code, f"expected {code}, got {got}: {message}"
        got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got_status == status, f"{code} came with HTTP {got_status}"
        if text is not None:
            assert text in message, f"expected {text!r} in {message!r}"
        checks += 1
        return message
    raise AssertionError(f"expected {code}, call succeeded")


def ok(cond, what):
    global checks
    assert cond, what
    checks += 1


root = client("root")
admin = client("keyadmin")
user = client("keyuser")
dev = client("dev")
mallory = client("mallory")

# --- The default key policy delegates to IAM --------------------------------------------------
key = root.create_key(Description="default policy")["KeyMetadata"]
key_arn = key["Arn"]
policy = json.loads(root.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
ok(policy["Id"] == "key-default-1", "default policy Id")
ok(policy["Statement"][0]["Sid"] == "Enable IAM User Permissions", "default policy Sid")
ok(policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "account principal")
# dev's identity policy allows kms:Encrypt/Decrypt/DescribeKey on this account's keys.
ct = dev.encrypt(KeyId=key_arn, Plaintext=b"dev data")["CiphertextBlob"]
ok(dev.decrypt(CiphertextBlob=ct)["Plaintext"] == b"dev data", "identity policy through the default key policy")
expect_error("AccessDeniedException", dev.disable_key, KeyId=key["KeyId"],
             text=f"User: arn:aws:iam::{ACCOUNT}:user/dev is not authorized to perform: kms:DisableKey "
                  f"on resource: {key_arn} because no identity-based policy allows the kms:DisableKey action")
# keyuser has no identity policy: nothing through the default policy.
expect_error("AccessDeniedException", user.encrypt, KeyId=key_arn, Plaintext=b"x",
             text="because no identity-based policy allows the kms:Encrypt action")
# CreateKey / ListKeys are IAM-only.
expect_error("AccessDeniedException", user.create_key,
             text=f"User: arn:aws:iam::{ACCOUNT}:user/keyuser is not authorized to perform: kms:CreateKey on resource: *")
ok(any(k["KeyId"] == key["KeyId"] for k in dev.list_keys()["Keys"]), "dev may ListKeys")
# mallory's IAM policy allows kms:* but explicitly denies Decrypt: deny wins.
mallory.encrypt(KeyId=key_arn, Plaintext=b"m")
expect_error("AccessDeniedException", mallory.decrypt, CiphertextBlob=ct,
             text="with an explicit deny in an identity-based policy")

# --- The console's policy: key administrators and key users ------------------------------------
console_policy = {
    "Id": "key-consolepolicy-3",
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
         "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:user/keyadmin"]},
         "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                    "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                    "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
         "Resource": "*"},
        {"Sid": "Allow use of the key", "Effect": "Allow",
         "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:user/keyuser"]},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
         "Resource": "*"},
        {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
         "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:user/keyuser"]},
         "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    ],
}
ck = root.create_key(Description="console policy", Policy=json.dumps(console_policy))["KeyMetadata"]
ck_id, ck_arn = ck["KeyId"], ck["Arn"]
# Key users use the key, without any identity policy.
ct = user.encrypt(KeyId=ck_id, Plaintext=b"user data")["CiphertextBlob"]
ok(user.decrypt(CiphertextBlob=ct)["Plaintext"] == b"user data", "key user decrypts")
user.generate_data_key(KeyId=ck_id, KeySpec="AES_256")
ok(user.describe_key(KeyId=ck_id)["KeyMetadata"]["KeyId"] == ck_id, "key user describes")
expect_error("AccessDeniedException", user.disable_key, KeyId=ck_id,
             text=f"on resource: {ck_arn} because no identity-based policy allows the kms:DisableKey action")
expect_error("AccessDeniedException", user.schedule_key_deletion, KeyId=ck_id, PendingWindowInDays=7)
# Key administrators manage it but cannot use it.
admin.disable_key(KeyId=ck_id)
admin.enable_key(KeyId=ck_id)
admin.tag_resource(KeyId=ck_id, Tags=[{"TagKey": "owner", "TagValue": "team-a"}])
admin.update_key_description(KeyId=ck_id, Description="managed by keyadmin")
ok(admin.get_key_policy(KeyId=ck_id, PolicyName="default")["Policy"], "admin reads the policy")
expect_error("AccessDeniedException", admin.encrypt, KeyId=ck_id, Plaintext=b"x",
             text=f"User: arn:aws:iam::{ACCOUNT}:user/keyadmin is not authorized to perform: kms:Encrypt")
expect_error("AccessDeniedException", admin.decrypt, CiphertextBlob=ct)
sched = admin.schedule_key_deletion(KeyId=ck_id, PendingWindowInDays=7)
ok(sched["KeyState"] == "PendingDeletion", "admin schedules deletion")
admin.cancel_key_deletion(KeyId=ck_id)
admin.enable_key(KeyId=ck_id)
# The administrator may rewrite the policy, but not into one that locks them out.
expect_error("MalformedPolicyDocumentException", admin.put_key_policy, KeyId=ck_id, PolicyName="default",
             Policy=json.dumps({"Version": "2012-10-17", "Statement": [console_policy["Statement"][2]]}),
             text="The new key policy will not allow you to update the key policy in the future.")
admin.put_key_policy(KeyId=ck_id, PolicyName="default", Policy=json.dumps(console_policy))
ok(user.encrypt(KeyId=ck_id, Plaintext=b"still")["KeyId"] == ck_arn, "policy still in force")

# --- Explicit deny in the key policy wins over every allow ------------------------------------
deny_policy = json.loads(json.dumps(console_policy))
deny_policy["Statement"].append({
    "Sid": "No decrypt outside the app context", "Effect": "Deny",
    "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
    "Condition": {"StringNotEquals": {"kms:EncryptionContext:app": "payroll"}}})
root.put_key_policy(KeyId=ck_id, PolicyName="default", Policy=json.dumps(deny_policy))
ct2 = user.encrypt(KeyId=ck_id, Plaintext=b"pay", EncryptionContext={"app": "payroll"})["CiphertextBlob"]
ok(user.decrypt(CiphertextBlob=ct2, EncryptionContext={"app": "payroll"})["Plaintext"] == b"pay",
   "condition satisfied")
expect_error("AccessDeniedException", user.decrypt, CiphertextBlob=ct,
             text="with an explicit deny in a resource-based policy")
expect_error("AccessDeniedException", root.decrypt, CiphertextBlob=ct,
             text=f"User: arn:aws:iam::{ACCOUNT}:root is not authorized to perform: kms:Decrypt")

# --- Malformed policies and the lockout check --------------------------------------------------
expect_error("MalformedPolicyDocumentException", root.create_key, Policy="{not json")
expect_error("MalformedPolicyDocumentException", root.create_key,
             Policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*",
                                                                       "Resource": "*"}]}))
expect_error("MalformedPolicyDocumentException", root.create_key,
             Policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*",
                                "Resource": "*", "Principal": {"AWS": "arn:aws:iam::999988887777:root"}}]}),
             text="Policy contains a statement with one or more invalid principals.")
expect_error("MalformedPolicyDocumentException", root.create_key,
             Policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*",
                                "Resource": "*", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/nobody"}}]}),
             text="Policy contains a statement with one or more invalid principals.")
lockout = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
                                                   "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
expect_error("MalformedPolicyDocumentException", root.create_key, Policy=json.dumps(lockout),
             text="The new key policy will not allow you to update the key policy in the future.")
locked = root.create_key(Policy=json.dumps(lockout), BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
expect_error("AccessDeniedException", root.put_key_policy, KeyId=locked["KeyId"], PolicyName="default",
             Policy=json.dumps(console_policy),
             text="because no resource-based policy allows the kms:PutKeyPolicy action")
expect_error("LimitExceededException", root.create_key,
             Policy=json.dumps({"Version": "2012-10-17", "Statement": [
                 {"Sid": "x" * 40000, "Effect": "Allow", "Action": "kms:*", "Resource": "*",
                  "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}))

# --- STS: GetCallerIdentity, AssumeRole, session tokens ----------------------------------------
sts = client("dev", service="sts")
me = sts.get_caller_identity()
ok(me["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/dev" and me["Account"] == ACCOUNT, "GetCallerIdentity")
ok(me["UserId"].startswith("AIDA"), "user id")
creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/app", RoleSessionName="s1")
ok(creds["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s1", "assumed role ARN")
c = creds["Credentials"]
ok(c["AccessKeyId"].startswith("ASIA"), "temporary access key id")
app_sts = client(None, service="sts", akid=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])
ok(app_sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s1", "session identity")
app = client(None, akid=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])
ct3 = app.encrypt(KeyId=key_arn, Plaintext=b"role data")["CiphertextBlob"]
ok(app.decrypt(CiphertextBlob=ct3)["Plaintext"] == b"role data", "role session uses its role's policy")
expect_error("AccessDeniedException", app.schedule_key_deletion, KeyId=key_arn, PendingWindowInDays=7,
             text=f"User: arn:aws:sts::{ACCOUNT}:assumed-role/app/s1 is not authorized to perform: kms:ScheduleKeyDeletion")
# A forged or tampered token is refused; a wrong secret fails the signature.
forged = client(None, akid=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"][:-8] + "AAAAAAA=")
expect_error("UnrecognizedClientException", forged.list_keys,
             text="The security token included in the request is invalid.")
expect_error("UnrecognizedClientException", client(None, akid="ASIAUNKNOWNSESSION01", secret="x",
                                                    token="bm90IGEgdG9rZW4=").list_keys)
# The trust policy decides who may assume a role: keyuser is not trusted (its identity policy
# does not allow sts:AssumeRole and the trust policy names only the account).
expect_error("AccessDenied", client("keyuser", service="sts").assume_role,
             RoleArn=f"arn:aws:iam::{ACCOUNT}:role/app", RoleSessionName="s2", status=403,
             text=f"User: arn:aws:iam::{ACCOUNT}:user/keyuser is not authorized to perform: sts:AssumeRole")
expect_error("ValidationError", sts.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/app",
             RoleSessionName="s3", DurationSeconds=60)
# A session policy narrows the session.
narrow = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/app", RoleSessionName="narrow",
                         Policy=json.dumps({"Version": "2012-10-17", "Statement": [
                             {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}))["Credentials"]
n = client(None, akid=narrow["AccessKeyId"], secret=narrow["SecretAccessKey"], token=narrow["SessionToken"])
n.encrypt(KeyId=key_arn, Plaintext=b"n")
expect_error("AccessDeniedException", n.decrypt, CiphertextBlob=ct3)
# A key policy may name the role: every session of it matches.
role_policy = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
     "Action": "kms:*", "Resource": "*"},
    {"Sid": "app role", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/app"},
     "Action": "kms:GenerateDataKey", "Resource": "*"}]}
rk = root.create_key(Policy=json.dumps(role_policy))["KeyMetadata"]
app.generate_data_key(KeyId=rk["Arn"], KeySpec="AES_256")
expect_error("AccessDeniedException", app.disable_key, KeyId=rk["Arn"])

print(f"access: {checks} checks passed")
