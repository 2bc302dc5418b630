#!/usr/bin/env bash
# The AWS documentation's import procedure (as in README.md's walk-through), one key at a time
# with the aws CLI and openssl: the baseline `keyferry import` is compared against.
#
#   bench/seed_procedure.sh MATERIAL_DIR WORK_DIR      (AWS_* variables name the endpoint)
#
# For every *.bin file (32 bytes of symmetric key material): create-key --origin EXTERNAL,
# get-parameters-for-import (RSAES_OAEP_SHA_256, RSA_4096), base64-decode the public key and
# token, wrap with openssl pkeyutl, import-key-material. Stops at the first failure.
set -euo pipefail
material_dir=$1
work=$2
mkdir -p "$work"
cd "$work"
for f in "$material_dir"/*.bin; do
  KEY=$(aws kms create-key --origin EXTERNAL --query KeyMetadata.KeyId --output text)
  aws kms get-parameters-for-import --key-id "$KEY" --wrapping-algorithm RSAES_OAEP_SHA_256 \
      --wrapping-key-spec RSA_4096 --query "[ImportToken, PublicKey]" --output text \
    | awk '{print $1 > "ImportToken.b64"; print $2 > "WrappingPublicKey.b64"}'
  openssl enc -d -base64 -A -in WrappingPublicKey.b64 -out WrappingPublicKey.bin
  openssl enc -d -base64 -A -in ImportToken.b64 -out ImportToken.bin
  openssl pkeyutl -encrypt -in "$f" -out EncryptedKeyMaterial.bin \
      -inkey WrappingPublicKey.bin -keyform DER -pubin \
      -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
  aws kms import-key-material --key-id "$KEY" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
      --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >/dev/null
  echo "$KEY"
done
