#!/usr/bin/env bash
# Multi-Region BYOK with the aws CLI and openssl against `keyferry serve --regions
# us-east-1,eu-west-1` (AWS's procedure in "Importing key material into multi-Region keys"):
# an EXTERNAL primary in us-east-1, its replica in eu-west-1, the same material imported into
# both (each with its own wrapping key and import token), a ciphertext of one Region decrypted
# in the other, different material refused, rotation of imported material across both
# (PENDING_MULTI_REGION_IMPORT_AND_ROTATION), then UpdatePrimaryRegion.
set -euo pipefail
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
us() { aws --region us-east-1 "$@"; }
eu() { aws --region eu-west-1 "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_error CODE CMD...: CMD must fail with CODE in its message.
expect_error() {
  local code=$1; shift
  if "$@" > out.txt 2> err.txt; then fail "$* succeeded, expected $code"; fi
  grep -q "$code" err.txt || { cat err.txt >&2; fail "$* did not fail with $code"; }
}

# wrap_for REGIONFN KEY MATERIAL OUT: GetParametersForImport in that Region, wrap MATERIAL with
# openssl (RSAES_OAEP_SHA_256); leaves OUT.enc and OUT.token.
wrap_for() {
  local fn=$1 key=$2 material=$3 out=$4
  $fn kms get-parameters-for-import --key-id "$key" \
    --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_2048 \
    --query "[ImportToken, PublicKey]" --output text \
    | awk -v o="$out" '{print $1 > (o ".token.b64"); print $2 > (o ".pub.b64")}'
  openssl enc -d -base64 -A -in "$out.pub.b64" -out "$out.pub.der"
  openssl enc -d -base64 -A -in "$out.token.b64" -out "$out.token"
  openssl pkeyutl -in "$material" -out "$out.enc" -inkey "$out.pub.der" -keyform DER -pubin \
    -encrypt -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
}

state() { $1 kms describe-key --key-id "$2" --query KeyMetadata.KeyState --output text; }

wait_state() {  # wait_state REGIONFN KEY STATE: a replica is Creating for about a second
  for _ in $(seq 1 50); do
    [ "$(state "$1" "$2")" = "$3" ] && return 0
    sleep 0.1
  done
  fail "$2 never became $3 (is $(state "$1" "$2"))"
}

KEY=$(us kms create-key --origin EXTERNAL --multi-region --description "MRK BYOK" \
  --query KeyMetadata.KeyId --output text)
case "$KEY" in mrk-*) ;; *) fail "not a multi-Region key id: $KEY" ;; esac
test "$(state us "$KEY")" = PendingImport

eu kms list-keys --query 'Keys[].KeyId' --output text > keys.txt
listed=$(grep -c -- "$KEY" keys.txt || true)
test "$listed" = 0 || fail "replica listed before ReplicateKey"

us kms replicate-key --key-id "$KEY" --replica-region eu-west-1 --description "Dublin replica" \
  --tags TagKey=site,TagValue=dublin > replica.json
grep -q '"KeyState": "Creating"' replica.json || fail "replica not Creating: $(cat replica.json)"
grep -q '"MultiRegionKeyType": "REPLICA"' replica.json || fail "not a replica"
wait_state eu "$KEY" PendingImport
test "$(eu kms describe-key --key-id "$KEY" \
  --query KeyMetadata.MultiRegionConfiguration.PrimaryKey.Region --output text)" = us-east-1
test "$(us kms describe-key --key-id "$KEY" \
  --query 'KeyMetadata.MultiRegionConfiguration.ReplicaKeys[0].Arn' --output text)" \
  = "arn:aws:kms:eu-west-1:111122223333:key/$KEY"
expect_error AlreadyExistsException us kms replicate-key --key-id "$KEY" --replica-region eu-west-1
expect_error UnsupportedOperationException us kms replicate-key --key-id "$KEY" --replica-region us-west-2

# The same material into the primary and the replica, each with its own token.
openssl rand -rand /dev/urandom 32 > material.bin
wrap_for us "$KEY" material.bin us1
wrap_for eu "$KEY" material.bin eu1
# A token from one Region's key is not accepted by the other.
expect_error InvalidImportTokenException eu kms import-key-material --key-id "$KEY" \
  --encrypted-key-material fileb://us1.enc --import-token fileb://us1.token \
  --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE
us kms import-key-material --key-id "$KEY" --encrypted-key-material fileb://us1.enc \
  --import-token fileb://us1.token --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE > /dev/null
test "$(state us "$KEY")" = Enabled
test "$(state eu "$KEY")" = PendingImport

# Different material is refused by the replica.
openssl rand 32 > other.bin
wrap_for eu "$KEY" other.bin eu2
expect_error IncorrectKeyMaterialException eu kms import-key-material --key-id "$KEY" \
  --encrypted-key-material fileb://eu2.enc --import-token fileb://eu2.token \
  --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE
test "$(state eu "$KEY")" = PendingImport
eu kms import-key-material --key-id "$KEY" --encrypted-key-material fileb://eu1.enc \
  --import-token fileb://eu1.token --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE > /dev/null
test "$(state eu "$KEY")" = Enabled

# A ciphertext from us-east-1 decrypts in eu-west-1, and the other way round.
echo "multi-Region plaintext" > pt.txt
us kms encrypt --key-id "$KEY" --plaintext fileb://pt.txt --query CiphertextBlob --output text \
  | openssl enc -d -base64 -A > ct_us.bin
eu kms decrypt --ciphertext-blob fileb://ct_us.bin --query Plaintext --output text \
  | openssl enc -d -base64 -A > back.txt
cmp pt.txt back.txt
eu kms encrypt --key-id "$KEY" --plaintext fileb://pt.txt --query CiphertextBlob --output text \
  | openssl enc -d -base64 -A > ct_eu.bin
us kms decrypt --ciphertext-blob fileb://ct_eu.bin --query Plaintext --output text \
  | openssl enc -d -base64 -A > back.txt
cmp pt.txt back.txt

# Rotation of imported material: new material into the primary, the same into the replica,
# then RotateKeyOnDemand on the primary.
openssl rand 32 > material2.bin
wrap_for us "$KEY" material2.bin us3
NEW=$(us kms import-key-material --key-id "$KEY" --encrypted-key-material fileb://us3.enc \
  --import-token fileb://us3.token --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE \
  --import-type NEW_KEY_MATERIAL --query KeyMaterialId --output text)
test "$(us kms list-key-rotations --key-id "$KEY" --include-key-material ALL_KEY_MATERIAL \
  --query "Rotations[?KeyMaterialId=='$NEW'].KeyMaterialState" --output text)" \
  = PENDING_MULTI_REGION_IMPORT_AND_ROTATION
expect_error KMSInvalidStateException us kms rotate-key-on-demand --key-id "$KEY"
wrap_for eu "$KEY" material2.bin eu3
eu kms import-key-material --key-id "$KEY" --encrypted-key-material fileb://eu3.enc \
  --import-token fileb://eu3.token --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE \
  --import-type EXISTING_KEY_MATERIAL > /dev/null
test "$(us kms list-key-rotations --key-id "$KEY" --include-key-material ALL_KEY_MATERIAL \
  --query "Rotations[?KeyMaterialId=='$NEW'].KeyMaterialState" --output text)" = PENDING_ROTATION
expect_error UnsupportedOperationException eu kms rotate-key-on-demand --key-id "$KEY"
us kms rotate-key-on-demand --key-id "$KEY" > /dev/null
for fn in us eu; do
  test "$($fn kms describe-key --key-id "$KEY" --query KeyMetadata.CurrentKeyMaterialId \
    --output text)" = "$NEW" || fail "$fn: current material is not $NEW"
done
eu kms encrypt --key-id "$KEY" --plaintext fileb://pt.txt --query CiphertextBlob --output text \
  | openssl enc -d -base64 -A > ct_new.bin
for c in ct_us.bin ct_new.bin; do
  us kms decrypt --ciphertext-blob "fileb://$c" --query Plaintext --output text \
    | openssl enc -d -base64 -A > back.txt
  cmp pt.txt back.txt
done

# UpdatePrimaryRegion: eu-west-1 becomes the primary.
us kms update-primary-region --key-id "$KEY" --primary-region eu-west-1
wait_state eu "$KEY" Enabled
wait_state us "$KEY" Enabled
test "$(us kms describe-key --key-id "$KEY" \
  --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text)" = REPLICA
test "$(eu kms describe-key --key-id "$KEY" \
  --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text)" = PRIMARY

# The primary cannot go before its replica: PendingReplicaDeletion, no deletion date.
eu kms schedule-key-deletion --key-id "$KEY" --pending-window-in-days 7 > del.json
grep -q '"KeyState": "PendingReplicaDeletion"' del.json || fail "$(cat del.json)"
dates=$(grep -c DeletionDate del.json || true)
test "$dates" = 0 || fail "DeletionDate shown: $(cat del.json)"

# A Region not served is refused like a signature for the wrong Region.
expect_error "Credential should be scoped to a valid region" aws --region us-west-2 kms list-keys
echo "multi_region_byok: ok"
