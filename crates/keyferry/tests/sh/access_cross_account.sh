#!/usr/bin/env bash
# Seed 003, the sharing part, with the aws CLI and two accounts' credentials: account 111122223333
# imports a key (the seed's own openssl commands), then gives account 444455556666 use of it with
# the console's "Other AWS accounts" statements. The other account's user (whose IAM policy
# delegates kms use) encrypts and decrypts by key ARN, is refused by bare key id and refused
# administrative operations, and is refused everything once the statement is removed.
# The identities are in the file the test passed to `keyferry serve --identities`.
set -euo pipefail
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
as_owner() { AWS_ACCESS_KEY_ID=AKIAOWNERROOT0000001 AWS_SECRET_ACCESS_KEY=owner-root-secret aws "$@"; }
as_bob() { AWS_ACCESS_KEY_ID=AKIABOBOTHER00000001 AWS_SECRET_ACCESS_KEY=bob-secret aws "$@"; }
as_carol() { AWS_ACCESS_KEY_ID=AKIACAROLOTHER000001 AWS_SECRET_ACCESS_KEY=carol-secret aws "$@"; }

# expect_error CODE MESSAGE-FRAGMENT cmd…: the command must fail with that exception and text.
expect_error() {
  local code=$1 text=$2 rc=0; shift 2
  "$@" >out.txt 2>err.txt || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "expected $code, the call succeeded: $*" >&2; cat out.txt >&2; exit 1
  fi
  grep -q "($code)" err.txt || { echo "expected $code, got exit $rc: $*" >&2; cat out.txt err.txt >&2; exit 1; }
  grep -qF -- "$text" err.txt || { echo "expected text '$text' from: $*" >&2; cat err.txt >&2; exit 1; }
}

# 1. The owner creates an External key and imports 32 random bytes (seed 003 / AWS docs commands).
KEY_ID=$(as_owner kms create-key --origin EXTERNAL --description "shared BYOK key" --query KeyMetadata.KeyId --output text)
KEY_ARN=$(as_owner kms describe-key --key-id "$KEY_ID" --query KeyMetadata.Arn --output text)
as_owner kms get-parameters-for-import --key-id "$KEY_ID" \
  --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_2048 \
  --query "[ImportToken, PublicKey]" --output text \
  | awk '{print $1 > "ImportToken.b64"; print $2 > "WrappingPublicKey.b64"}'
openssl enc -d -base64 -A -in WrappingPublicKey.b64 -out WrappingPublicKey.bin
openssl enc -d -base64 -A -in ImportToken.b64 -out ImportToken.bin
openssl rand -out PlaintextKeyMaterial.bin 32
openssl pkeyutl -encrypt -in PlaintextKeyMaterial.bin -out EncryptedKeyMaterial.bin \
  -inkey WrappingPublicKey.bin -keyform DER -pubin \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
as_owner kms import-key-material --key-id "$KEY_ID" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >/dev/null
test "$(as_owner kms describe-key --key-id "$KEY_ID" --query KeyMetadata.KeyState --output text)" = Enabled

# Before any sharing, the other account is refused by the key policy (the default policy names
# only the owner account).
echo -n "hello from the other account" > msg.txt
expect_error AccessDeniedException "because no resource-based policy allows the kms:Encrypt action" \
  as_bob kms encrypt --key-id "$KEY_ARN" --plaintext fileb://msg.txt

# 2. The console's "Other AWS accounts": the other account's root in both key-user statements.
cat > policy-shared.json <<EOF
{
  "Version": "2012-10-17",
  "Id": "key-consolepolicy-3",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "Allow use of the key",
      "Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam::444455556666:root"]},
      "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
      "Resource": "*"
    },
    {
      "Sid": "Allow attachment of persistent resources",
      "Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam::444455556666:root"]},
      "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
      "Resource": "*",
      "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    }
  ]
}
EOF
as_owner kms put-key-policy --key-id "$KEY_ID" --policy-name default --policy file://policy-shared.json
as_owner kms get-key-policy --key-id "$KEY_ID" --policy-name default --query Policy --output text > got.json
python3 -c 'import json,sys; p=json.load(open("got.json")); assert [s["Sid"] for s in p["Statement"]][1] == "Allow use of the key", p'

# 3. The other account's user encrypts and decrypts by key ARN.
as_bob kms encrypt --key-id "$KEY_ARN" --plaintext fileb://msg.txt --query CiphertextBlob --output text > ct.b64
openssl enc -d -base64 -A -in ct.b64 -out ct.bin
as_bob kms decrypt --key-id "$KEY_ARN" --ciphertext-blob fileb://ct.bin --query Plaintext --output text \
  | openssl enc -d -base64 -A > back.txt
cmp msg.txt back.txt
# …and without KeyId (the key is recovered from the ciphertext).
as_bob kms decrypt --ciphertext-blob fileb://ct.bin --query Plaintext --output text | openssl enc -d -base64 -A > back2.txt
cmp msg.txt back2.txt
test "$(as_bob kms describe-key --key-id "$KEY_ARN" --query KeyMetadata.KeyId --output text)" = "$KEY_ID"
# The owner decrypts what the other account encrypted: the same key.
as_owner kms decrypt --ciphertext-blob fileb://ct.bin --query Plaintext --output text | openssl enc -d -base64 -A > back3.txt
cmp msg.txt back3.txt

# 4. By bare key id the key is looked up in the caller's own account: NotFoundException, with the
# ARN rewritten into the caller's account as AWS does.
expect_error NotFoundException "arn:aws:kms:us-east-1:444455556666:key/$KEY_ID" \
  as_bob kms encrypt --key-id "$KEY_ID" --plaintext fileb://msg.txt

# 5. Administrative operations are refused across accounts, even by key ARN.
expect_error AccessDeniedException "kms:ScheduleKeyDeletion on resource: $KEY_ARN" \
  as_bob kms schedule-key-deletion --key-id "$KEY_ARN" --pending-window-in-days 7
expect_error AccessDeniedException "kms:PutKeyPolicy" \
  as_bob kms put-key-policy --key-id "$KEY_ARN" --policy-name default --policy file://policy-shared.json
expect_error AccessDeniedException "kms:DisableKey" as_bob kms disable-key --key-id "$KEY_ARN"
# CreateGrant needs kms:GrantIsForAWSResource (an AWS service acting for the user).
expect_error AccessDeniedException "kms:CreateGrant" \
  as_bob kms create-grant --key-id "$KEY_ARN" --grantee-principal arn:aws:iam::444455556666:root --operations Decrypt

# 6. A user of the other account whose IAM policy does not delegate kms use is refused: the key
# policy allows the account, but no identity-based policy allows the user.
expect_error AccessDeniedException "User: arn:aws:iam::444455556666:user/carol is not authorized to perform: kms:Encrypt on resource: $KEY_ARN because no identity-based policy allows the kms:Encrypt action" \
  as_carol kms encrypt --key-id "$KEY_ARN" --plaintext fileb://msg.txt

# 7. The owner removes the statements: the other account is refused everything again.
python3 - <<'EOF'
import json
p = json.load(open("policy-shared.json"))
p["Statement"] = p["Statement"][:1]
json.dump(p, open("policy-private.json", "w"))
EOF
as_owner kms put-key-policy --key-id "$KEY_ID" --policy-name default --policy file://policy-private.json
expect_error AccessDeniedException "because no resource-based policy allows the kms:Encrypt action" \
  as_bob kms encrypt --key-id "$KEY_ARN" --plaintext fileb://msg.txt
expect_error AccessDeniedException "kms:Decrypt" \
  as_bob kms decrypt --key-id "$KEY_ARN" --ciphertext-blob fileb://ct.bin
expect_error AccessDeniedException "kms:DescribeKey" as_bob kms describe-key --key-id "$KEY_ARN"
# The owner still uses it.
as_owner kms decrypt --ciphertext-blob fileb://ct.bin --query Plaintext --output text | openssl enc -d -base64 -A > back4.txt
cmp msg.txt back4.txt
echo "seed 003 sharing: ok"
