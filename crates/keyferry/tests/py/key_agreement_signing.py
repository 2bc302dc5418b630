"""Key agreement (DeriveSharedSecret), Ed25519 and ML-DSA through boto3 against `keyferry serve`,
every result checked with an implementation independent of the server:
- ECDH with Python `cryptography` (OpenSSL), for generated and imported KEY_AGREEMENT keys;
- pure Ed25519 with `cryptography`, and Ed25519ph (which `cryptography` lacks) with the RFC 8032
  verifier in rfc8032.py, itself checked against RFC 8032's test vector first;
- ML-DSA with dilithium-py, a pure-Python FIPS 204 implementation.
Plus GetPublicKey / DescribeKey as AWS shows these keys, and the errors AWS answers with."""
import hashlib
import os
import sys

import boto3
import botocore
from botocore.config import Config
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87

sys.path.insert(0, os.path.dirname(__file__))
import rfc8032  # noqa: E402

kms = boto3.client(
    "kms",
    endpoint_url=os.environ["KEYFERRY_ENDPOINT"],
    config=Config(retries={"max_attempts": 1}),
)
checks = 0


def ok(cond, what):
    global checks
    assert cond, what
    checks += 1


def expect_error(code, message, fn, **kw):
    """The call fails with `code` (HTTP 400) and, unless `message` is None, exactly `message`."""
    global checks
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, f"expected {code}, got {err}"
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        if message is not None:
            assert err.get("Message", "") == message, f"expected {message!r}, got {err}"
        checks += 1
        return
    raise AssertionError(f"expected {code} from {fn.__name__} {kw}")


DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
CURVES = {
    "ECC_NIST_P256": (ec.SECP256R1(), 32),
    "ECC_NIST_P384": (ec.SECP384R1(), 48),
    "ECC_NIST_P521": (ec.SECP521R1(), 66),
}


def spki(public_key):
    return public_key.public_bytes(DER, SPKI)


def derive(key_id, public_der, **kw):
    return kms.derive_shared_secret(
        KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=public_der, **kw
    )


# ---- key agreement: generated keys -------------------------------------------------------------
agreement_keys = {}
for spec, (curve, size) in CURVES.items():
    meta = kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    agreement_keys[spec] = meta
    ok(meta["KeyUsage"] == "KEY_AGREEMENT" and meta["KeySpec"] == spec, "CreateKey echoes spec/usage")
    ok(meta["KeyAgreementAlgorithms"] == ["ECDH"], "KeyMetadata lists ECDH")
    for absent in ("EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms"):
        ok(absent not in meta, f"no {absent} on a KEY_AGREEMENT key")
    described = kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]
    ok(described["KeyAgreementAlgorithms"] == ["ECDH"], "DescribeKey lists ECDH")
    pub = kms.get_public_key(KeyId=meta["KeyId"])
    ok(pub["KeyUsage"] == "KEY_AGREEMENT" and pub["KeySpec"] == spec, "GetPublicKey spec/usage")
    ok(pub["KeyAgreementAlgorithms"] == ["ECDH"], "GetPublicKey lists ECDH")
    ok("SigningAlgorithms" not in pub and "EncryptionAlgorithms" not in pub, "no other algorithms")
    kms_public = serialization.load_der_public_key(pub["PublicKey"])
    ok(kms_public.curve.name == curve.name, "the public key is on the spec's curve")

    # The peer's key pair is made here; both sides compute the same raw secret.
    peer = ec.generate_private_key(curve)
    resp = derive(meta["KeyId"], spki(peer.public_key()))
    expected = peer.exchange(ec.ECDH(), kms_public)
    ok(resp["SharedSecret"] == expected, f"{spec}: shared secret equals cryptography's ECDH")
    ok(len(resp["SharedSecret"]) == size, f"{spec}: raw secret is the field size")
    ok(resp["KeyId"] == meta["Arn"], "DeriveSharedSecret answers the key ARN")
    ok(resp["KeyAgreementAlgorithm"] == "ECDH" and resp["KeyOrigin"] == "AWS_KMS", "echoes")
    ok(derive(meta["KeyId"], spki(peer.public_key()))["SharedSecret"] == expected, "deterministic")

    # The wrong curve, a bare point, garbage: ValidationException with AWS's empty message.
    other_curve = ec.SECP384R1() if spec != "ECC_NIST_P384" else ec.SECP256R1()
    wrong = spki(ec.generate_private_key(other_curve).public_key())
    bare = peer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    for bad in (wrong, bare, b"InvalidPublicKey"):
        expect_error("ValidationException", "", derive, key_id=meta["KeyId"], public_der=bad)

# Two KMS keys on the same curve derive the same secret from each other's public keys.
a = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
b = agreement_keys["ECC_NIST_P256"]["KeyId"]
pub_a = kms.get_public_key(KeyId=a)["PublicKey"]
pub_b = kms.get_public_key(KeyId=b)["PublicKey"]
ok(derive(a, pub_b)["SharedSecret"] == derive(b, pub_a)["SharedSecret"], "two KMS keys agree")

# ---- key agreement: imported material ----------------------------------------------------------
for spec, wrapping in (("ECC_NIST_P256", "RSAES_OAEP_SHA_256"), ("ECC_NIST_P521", "RSA_AES_KEY_WRAP_SHA_256")):
    curve, _ = CURVES[spec]
    mine = ec.generate_private_key(curve)
    material = mine.private_bytes(DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    meta = kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT", Origin="EXTERNAL")["KeyMetadata"]
    ok(meta["KeyState"] == "PendingImport" and meta["KeyAgreementAlgorithms"] == ["ECDH"], "EXTERNAL key")
    key_id = meta["KeyId"]
    peer = ec.generate_private_key(curve)
    expect_error(
        "KMSInvalidStateException",
        f"{meta['Arn']} is pending import.",
        derive,
        key_id=key_id,
        public_der=spki(peer.public_key()),
    )
    p = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=wrapping, WrappingKeySpec="RSA_4096")
    wrapping_key = serialization.load_der_public_key(p["PublicKey"])
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    if wrapping.startswith("RSAES"):
        wrapped = wrapping_key.encrypt(material, oaep)
    else:
        aes = os.urandom(32)
        wrapped = wrapping_key.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, material)
    kms.import_key_material(
        KeyId=key_id,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrapped,
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    ok(kms.get_public_key(KeyId=key_id)["PublicKey"] == spki(mine.public_key()), "imported public key")
    resp = derive(key_id, spki(peer.public_key()))
    ok(resp["SharedSecret"] == mine.exchange(ec.ECDH(), peer.public_key()), f"imported {spec}: same secret")
    ok(resp["SharedSecret"] == peer.exchange(ec.ECDH(), mine.public_key()), "and the peer's")
    ok(resp["KeyOrigin"] == "EXTERNAL", "KeyOrigin EXTERNAL")

# ---- key agreement: errors ---------------------------------------------------------------------
sign_key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
sym_key = kms.create_key()["KeyMetadata"]
peer_der = spki(ec.generate_private_key(ec.SECP256R1()).public_key())
expect_error(
    "InvalidKeyUsageException",
    f"{sign_key['Arn']} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.",
    derive,
    key_id=sign_key["KeyId"],
    public_der=peer_der,
)
expect_error(
    "InvalidKeyUsageException",
    f"{sym_key['Arn']} key usage is ENCRYPT_DECRYPT which is not valid for DeriveSharedSecret.",
    derive,
    key_id=sym_key["KeyId"],
    public_der=peer_der,
)
for spec in ("RSA_2048", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "HMAC_256"):
    expect_error(
        "ValidationException",
        f"KeyUsage KEY_AGREEMENT is not compatible with KeySpec {spec}",
        kms.create_key,
        KeySpec=spec,
        KeyUsage="KEY_AGREEMENT",
    )
expect_error(
    "DryRunOperationException",
    "The request would have succeeded, but the DryRun option is set.",
    derive,
    key_id=b,
    public_der=peer_der,
    DryRun=True,
)

# ---- Ed25519 -----------------------------------------------------------------------------------
# The RFC 8032 verifier here must accept RFC 8032's own Ed25519ph test vector ("abc").
rfc_pub = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
rfc_sig = bytes.fromhex(
    "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
    "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
)
ok(rfc8032.verify(rfc_pub, b"abc", rfc_sig, prehash=True), "RFC 8032 Ed25519ph vector verifies")
ok(not rfc8032.verify(rfc_pub, b"abd", rfc_sig, prehash=True), "and rejects another message")

meta = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
ed_id = meta["KeyId"]
ok(meta["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"], "Ed25519 algorithms")
# The deprecated CustomerMasterKeySpec enum has no Ed25519 or ML-DSA value: it is left out.
ok("CustomerMasterKeySpec" not in meta, "no CustomerMasterKeySpec")
pub = kms.get_public_key(KeyId=ed_id)
ok(pub["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"], "GetPublicKey algorithms")
ok(len(pub["PublicKey"]) == 44, "44-byte Ed25519 SubjectPublicKeyInfo")
ed_pub = serialization.load_der_public_key(pub["PublicKey"])
ok(isinstance(ed_pub, ed25519.Ed25519PublicKey), "cryptography reads an Ed25519 key")
raw_pub = ed_pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

message = b"a message signed with Ed25519 " * 100
sig = kms.sign(KeyId=ed_id, Message=message, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")
ok(sig["SigningAlgorithm"] == "ED25519_SHA_512" and len(sig["Signature"]) == 64, "64-byte signature")
ed_pub.verify(sig["Signature"], message)  # raises InvalidSignature if wrong
ok(rfc8032.verify(raw_pub, message, sig["Signature"]), "RFC 8032 verifier agrees")
try:
    ed_pub.verify(sig["Signature"], message + b"!")
    raise AssertionError("a changed message verified")
except InvalidSignature:
    ok(True, "changed message does not verify")
ok(
    kms.verify(KeyId=ed_id, Message=message, Signature=sig["Signature"], SigningAlgorithm="ED25519_SHA_512")["SignatureValid"],
    "Verify accepts",
)
expect_error(
    "KMSInvalidSignatureException",
    None,
    kms.verify,
    KeyId=ed_id,
    Message=message + b"!",
    Signature=sig["Signature"],
    SigningAlgorithm="ED25519_SHA_512",
)

digest = hashlib.sha512(message).digest()
ph = kms.sign(KeyId=ed_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ED25519_PH_SHA_512")
ok(len(ph["Signature"]) == 64 and ph["Signature"] != sig["Signature"], "Ed25519ph signature")
# AWS: "KMS still performs the SHA-512 prehash": the signature is Ed25519ph over the digest sent.
ok(rfc8032.verify(raw_pub, digest, ph["Signature"], prehash=True), "Ed25519ph verifies (RFC 8032)")
ok(not rfc8032.verify(raw_pub, message, ph["Signature"], prehash=True), "not Ed25519ph of the message")
ok(not rfc8032.verify(raw_pub, digest, ph["Signature"]), "not pure Ed25519 of the digest")
ok(
    kms.verify(KeyId=ed_id, Message=digest, MessageType="DIGEST", Signature=ph["Signature"], SigningAlgorithm="ED25519_PH_SHA_512")["SignatureValid"],
    "Verify accepts Ed25519ph",
)
expect_error(
    "ValidationException",
    "Message type DIGEST is incompatible with algorithm ED25519_SHA_512.",
    kms.sign,
    KeyId=ed_id,
    Message=digest,
    MessageType="DIGEST",
    SigningAlgorithm="ED25519_SHA_512",
)
expect_error(
    "ValidationException",
    "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512.",
    kms.sign,
    KeyId=ed_id,
    Message=message,
    MessageType="RAW",
    SigningAlgorithm="ED25519_PH_SHA_512",
)
expect_error(
    "ValidationException",
    "Digest is invalid length for algorithm ED25519_PH_SHA_512.",
    kms.sign,
    KeyId=ed_id,
    Message=digest[:32],
    MessageType="DIGEST",
    SigningAlgorithm="ED25519_PH_SHA_512",
)
expect_error(
    "InvalidKeyUsageException",
    "Algorithm ECDSA_SHA_512 is incompatible with key spec ECC_NIST_EDWARDS25519.",
    kms.sign,
    KeyId=ed_id,
    Message=message,
    SigningAlgorithm="ECDSA_SHA_512",
)

# GenerateDataKeyPair ECC_NIST_EDWARDS25519: a usable Ed25519 pair.
pair = kms.generate_data_key_pair(KeyId=sym_key["KeyId"], KeyPairSpec="ECC_NIST_EDWARDS25519")
private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
ok(isinstance(private, ed25519.Ed25519PrivateKey), "data key pair is Ed25519")
ok(spki(private.public_key()) == pair["PublicKey"], "data key pair public key matches")
ok(
    kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"] == pair["PrivateKeyPlaintext"],
    "data key pair private key decrypts",
)

# ---- ML-DSA ------------------------------------------------------------------------------------
SIZES = {
    "ML_DSA_44": (ML_DSA_44, 1312, 2420),
    "ML_DSA_65": (ML_DSA_65, 1952, 3309),
    "ML_DSA_87": (ML_DSA_87, 2592, 4627),
}
for spec, (impl, pk_len, sig_len) in SIZES.items():
    meta = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    key_id = meta["KeyId"]
    ok(meta["SigningAlgorithms"] == ["ML_DSA_SHAKE_256"], f"{spec} algorithms")
    pub = kms.get_public_key(KeyId=key_id)
    ok(pub["SigningAlgorithms"] == ["ML_DSA_SHAKE_256"] and pub["KeySpec"] == spec, "GetPublicKey")
    spki_der = pub["PublicKey"]
    ok(len(spki_der) == pk_len + 22, f"{spec}: SubjectPublicKeyInfo of {pk_len + 22} bytes")
    raw = spki_der[-pk_len:]
    for msg in (b"m", b"an ML-DSA message", os.urandom(4096)):
        sig = kms.sign(KeyId=key_id, Message=msg, SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
        ok(len(sig) == sig_len, f"{spec}: {sig_len}-byte signature")
        ok(impl.verify(raw, msg, sig), f"{spec}: dilithium-py verifies")
        ok(not impl.verify(raw, msg + b"!", sig), f"{spec}: dilithium-py rejects another message")
        ok(
            kms.verify(KeyId=key_id, Message=msg, Signature=sig, SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"],
            "Verify accepts",
        )
    # A valid signature by another key (made by dilithium-py) does not verify under this key.
    other_pk, other_sk = impl.keygen()
    foreign = impl.sign(other_sk, b"x")
    ok(impl.verify(other_pk, b"x", foreign), "dilithium-py's own signature verifies for it")
    expect_error(
        "KMSInvalidSignatureException",
        None,
        kms.verify,
        KeyId=key_id,
        Message=b"x",
        Signature=foreign,
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )
    expect_error(
        "ValidationException",
        f"Message type DIGEST is incompatible with key spec {spec}.",
        kms.sign,
        KeyId=key_id,
        Message=hashlib.sha512(b"m").digest(),
        MessageType="DIGEST",
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )
    expect_error(
        "ValidationException",
        None,
        kms.sign,
        KeyId=key_id,
        Message=os.urandom(4097),
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )
    expect_error(
        "UnsupportedOperationException",
        "Keyferry does not implement MessageType EXTERNAL_MU (ML-DSA external mu).",
        kms.sign,
        KeyId=key_id,
        Message=os.urandom(64),
        MessageType="EXTERNAL_MU",
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )
    expect_error(
        "UnsupportedOperationException",
        f"KeySpec {spec} does not support imported key material (Origin EXTERNAL).",
        kms.create_key,
        KeySpec=spec,
        KeyUsage="SIGN_VERIFY",
        Origin="EXTERNAL",
    )

print(f"key_agreement_signing: {checks} checks passed")
