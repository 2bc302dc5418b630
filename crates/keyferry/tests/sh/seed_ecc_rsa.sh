#!/usr/bin/env bash
# The CloudHSM blog's asymmetric procedure with openssl in place of the HSM: an ECC P-256 signing
# key wrapped with RSAES_OAEP_SHA_256 / RSA_4096, then a KMS signature verified by openssl; and an
# RSA-3072 key with the two-step RSA_AES_KEY_WRAP_SHA_256 (openssl enc -id-aes256-wrap-pad).
set -euo pipefail
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }

KEY_ID=$(aws kms create-key --origin EXTERNAL --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY --query KeyMetadata.KeyId --output text)
aws kms get-parameters-for-import --key-id "$KEY_ID" --wrapping-algorithm RSAES_OAEP_SHA_256 \
  --wrapping-key-spec RSA_4096 --query "[ImportToken, PublicKey]" --output text \
  | awk '{print $1 > "ImportToken.b64"; print $2 > "WrappingPublicKey.b64"}'
openssl enc -d -base64 -A -in WrappingPublicKey.b64 -out WrappingPublicKey.bin
openssl rsa -pubin -in WrappingPublicKey.bin -inform DER -outform PEM -out WrappingPublicKey.pem
openssl enc -d -base64 -A -in ImportToken.b64 -out ImportToken.bin

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem
openssl pkcs8 -topk8 -nocrypt -in ec.pem -outform DER -out ec.p8
openssl pkey -in ec.pem -pubout -out KeyName.pem
openssl pkeyutl -encrypt -in ec.p8 -out EncryptedECC_P256KeyMaterial.bin -inkey WrappingPublicKey.pem -pubin \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
aws kms import-key-material --key-id "$KEY_ID" \
  --encrypted-key-material fileb://EncryptedECC_P256KeyMaterial.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE > /dev/null

# GetPublicKey equals our public key.
aws kms get-public-key --key-id "$KEY_ID" --query PublicKey --output text | openssl enc -d -base64 -A > kms_pub.der
openssl pkey -pubin -in KeyName.pem -outform DER -out our_pub.der
cmp kms_pub.der our_pub.der

# The blog's test: sign with KMS, verify with openssl.
echo -n 'Testing My Imported Key!' | openssl base64 -out msg_base64.txt
aws kms sign --key-id "$KEY_ID" --message fileb://msg_base64.txt --message-type RAW \
  --signing-algorithm ECDSA_SHA_256 --query Signature --output text > signature.sig
openssl enc -d -base64 -in signature.sig -out signature.bin
openssl dgst -sha256 -verify KeyName.pem -signature signature.bin msg_base64.txt | grep -q "Verified OK"

# RSA private key: RSA_AES_KEY_WRAP_SHA_256 built by hand as in AWS's developer guide.
RSA_ID=$(aws kms create-key --origin EXTERNAL --key-spec RSA_3072 --key-usage SIGN_VERIFY --query KeyMetadata.KeyId --output text)
# RSAES_OAEP_* cannot carry RSA material: refused up front.
if aws kms get-parameters-for-import --key-id "$RSA_ID" --wrapping-algorithm RSAES_OAEP_SHA_256 \
     --wrapping-key-spec RSA_4096 2>err.txt >/dev/null; then echo "OAEP for RSA accepted" >&2; exit 1; fi
grep -q ValidationException err.txt
aws kms get-parameters-for-import --key-id "$RSA_ID" --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 \
  --wrapping-key-spec RSA_2048 --query "[ImportToken, PublicKey]" --output text \
  | awk '{print $1 > "rt.b64"; print $2 > "rk.b64"}'
openssl enc -d -base64 -A -in rk.b64 -out rk.der; openssl enc -d -base64 -A -in rt.b64 -out rt.bin
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out rsa.pem
openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out PlaintextKeyMaterial.der
openssl rand -out aes-key.bin 32
openssl enc -id-aes256-wrap-pad -K "$(od -An -tx1 < aes-key.bin | tr -d ' \n')" -iv A65959A6 \
  -in PlaintextKeyMaterial.der -out key-material-wrapped.bin
openssl pkeyutl -encrypt -in aes-key.bin -out aes-key-wrapped.bin -inkey rk.der -keyform DER -pubin \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
cat aes-key-wrapped.bin key-material-wrapped.bin > EncryptedKeyMaterial.bin
aws kms import-key-material --key-id "$RSA_ID" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
  --import-token fileb://rt.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE > /dev/null
openssl pkey -in rsa.pem -pubout -out rsa_pub.pem
echo -n "release 1.2.3" > rel.txt
for alg in RSASSA_PSS_SHA_256 RSASSA_PKCS1_V1_5_SHA_256; do
  aws kms sign --key-id "$RSA_ID" --message fileb://rel.txt --message-type RAW --signing-algorithm "$alg" \
    --query Signature --output text | openssl enc -d -base64 -A > rsa.sig
  if [ "$alg" = RSASSA_PSS_SHA_256 ]; then
    openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -verify rsa_pub.pem -signature rsa.sig rel.txt | grep -q "Verified OK"
  else
    openssl dgst -sha256 -verify rsa_pub.pem -signature rsa.sig rel.txt | grep -q "Verified OK"
  fi
done
echo "seed_ecc_rsa: ok"
