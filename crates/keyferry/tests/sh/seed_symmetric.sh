#!/usr/bin/env bash
# The seed documents' symmetric procedure (YubiHSM blog, DPoD blog, AWS docs), command for command,
# with the aws CLI and openssl against keyferry serve (AWS_ENDPOINT_URL is set by the test).
set -euo pipefail
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }

KEY_ID=$(aws kms create-key --origin EXTERNAL --description "BYOK rehearsal" --query KeyMetadata.KeyId --output text)
test "$(aws kms describe-key --key-id "$KEY_ID" --query KeyMetadata.KeyState --output text)" = PendingImport

aws kms get-parameters-for-import --key-id "$KEY_ID" \
  --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_2048 \
  --query "[ImportToken, PublicKey]" --output text \
  | awk '{print $1 > "ImportToken.b64"; print $2 > "WrappingPublicKey.b64"}'
openssl enc -d -base64 -A -in WrappingPublicKey.b64 -out wrappingKey_DER
openssl enc -d -base64 -A -in ImportToken.b64 -out importToken.bin

# DPoD blog: convert the DER wrapping key to PEM (what the HSM tools want).
openssl rsa -in wrappingKey_DER -inform DER -out pub_key.pem -outform PEM -pubin -pubout
grep -q "BEGIN PUBLIC KEY" pub_key.pem

# YubiHSM blog: 32 random bytes, wrapped with RSA-OAEP SHA-256 by openssl.
openssl rand -rand /dev/urandom 32 > key.bin
openssl pkeyutl -in key.bin -out key.bin.enc -inkey wrappingKey_DER -keyform DER -pubin -encrypt \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256

# Expiry rules first: a bare import is refused (ValidTo required by default).
if aws kms import-key-material --key-id "$KEY_ID" --encrypted-key-material fileb://key.bin.enc \
     --import-token fileb://importToken.bin 2>err.txt; then echo "bare import accepted" >&2; exit 1; fi
grep -q ValidationException err.txt

aws kms import-key-material --key-id "$KEY_ID" --encrypted-key-material fileb://key.bin.enc \
  --import-token fileb://importToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE > import.json
test "$(aws kms describe-key --key-id "$KEY_ID" --query KeyMetadata.KeyState --output text)" = Enabled

# The key works, and what it encrypts opens with the material we hold (AES-256-GCM is ours to check
# only through KMS; round trip instead).
aws kms encrypt --key-id "$KEY_ID" --plaintext fileb://key.bin --query CiphertextBlob --output text > ct.b64
openssl enc -d -base64 -A -in ct.b64 -out ct.bin
aws kms decrypt --ciphertext-blob fileb://ct.bin --query Plaintext --output text | openssl enc -d -base64 -A > back.bin
cmp key.bin back.bin

# Different material is refused with IncorrectKeyMaterialException and changes nothing.
aws kms get-parameters-for-import --key-id "$KEY_ID" --wrapping-algorithm RSAES_OAEP_SHA_1 \
  --wrapping-key-spec RSA_4096 --query "[ImportToken, PublicKey]" --output text \
  | awk '{print $1 > "t2.b64"; print $2 > "k2.b64"}'
openssl enc -d -base64 -A -in k2.b64 -out k2.der; openssl enc -d -base64 -A -in t2.b64 -out t2.bin
openssl rand 32 > other.bin
openssl pkeyutl -in other.bin -out other.enc -inkey k2.der -keyform DER -pubin -encrypt \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1
if aws kms import-key-material --key-id "$KEY_ID" --encrypted-key-material fileb://other.enc \
     --import-token fileb://t2.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE 2>err.txt; then
  echo "different material accepted" >&2; exit 1; fi
grep -q IncorrectKeyMaterialException err.txt
test "$(aws kms describe-key --key-id "$KEY_ID" --query KeyMetadata.KeyState --output text)" = Enabled

# Delete the material, re-import the same material (how users keep an expiring key alive).
aws kms delete-imported-key-material --key-id "$KEY_ID" > /dev/null
test "$(aws kms describe-key --key-id "$KEY_ID" --query KeyMetadata.KeyState --output text)" = PendingImport
openssl pkeyutl -in key.bin -out again.enc -inkey k2.der -keyform DER -pubin -encrypt \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1
aws kms import-key-material --key-id "$KEY_ID" --encrypted-key-material fileb://again.enc \
  --import-token fileb://t2.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE > /dev/null
aws kms decrypt --ciphertext-blob fileb://ct.bin --query Plaintext --output text | openssl enc -d -base64 -A > back2.bin
cmp key.bin back2.bin
echo "seed_symmetric: ok"
