"""Import with an independent implementation (Python `cryptography` + boto3), then check what KMS
does with the key against `cryptography`: signatures verify with the source public key, MACs are
equal, GetPublicKey matches, imported symmetric keys round-trip. Also every import error, each
leaving the key as it was."""
import base64
import datetime
import hashlib
import hmac
import os
import time

import boto3
import botocore
from botocore.config import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

kms = boto3.client("kms", endpoint_url=os.environ["KEYFERRY_ENDPOINT"], config=Config(retries={"max_attempts": 1}, parameter_validation=False))
checks = 0


def ok(cond, what):
    global checks
    assert cond, what
    checks += 1


def expect_error(code, fn, **kw):
    global checks
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code, f"expected {code}, got {e.response['Error']}"
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        checks += 1
        return
    raise AssertionError(f"expected {code}")


def oaep(h):
    return padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(), label=None)


def wrap(alg, public_der, material):
    pub = serialization.load_der_public_key(public_der)
    h = hashes.SHA1 if alg.endswith("SHA_1") else hashes.SHA256
    if alg.startswith("RSAES_OAEP"):
        return pub.encrypt(material, oaep(h))
    aes = os.urandom(32)
    return pub.encrypt(aes, oaep(h)) + aes_key_wrap_with_padding(aes, material)


def params(key_id, alg, spec):
    p = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=alg, WrappingKeySpec=spec)
    ok(p["KeyId"].endswith(key_id) and p["KeyId"].startswith("arn:aws:kms:"), "params KeyId is the ARN")
    valid = p["ParametersValidTo"].timestamp() - time.time()
    ok(23.9 * 3600 < valid <= 24 * 3600 + 5, "valid for 24 hours")
    return p


def state(key_id):
    return kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]


def pkcs8(priv):
    return priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def spki(pub):
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- asymmetric: ECC and RSA, signatures verified by `cryptography`
cases = [
    ("ECC_NIST_P256", ec.generate_private_key(ec.SECP256R1()), "ECDSA_SHA_256", "RSAES_OAEP_SHA_256"),
    ("ECC_NIST_P384", ec.generate_private_key(ec.SECP384R1()), "ECDSA_SHA_384", "RSA_AES_KEY_WRAP_SHA_1"),
    ("ECC_NIST_P521", ec.generate_private_key(ec.SECP521R1()), "ECDSA_SHA_512", "RSAES_OAEP_SHA_1"),
    ("ECC_SECG_P256K1", ec.generate_private_key(ec.SECP256K1()), "ECDSA_SHA_256", "RSA_AES_KEY_WRAP_SHA_256"),
    ("RSA_2048", rsa.generate_private_key(65537, 2048), "RSASSA_PKCS1_V1_5_SHA_384", "RSA_AES_KEY_WRAP_SHA_256"),
]
for spec, priv, sig_alg, wrap_alg in cases:
    key_id = kms.create_key(Origin="EXTERNAL", KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    p = params(key_id, wrap_alg, "RSA_4096" if spec == "ECC_NIST_P521" else "RSA_3072")
    kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"],
                            EncryptedKeyMaterial=wrap(wrap_alg, p["PublicKey"], pkcs8(priv)),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    ok(meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE", spec)
    ok("CurrentKeyMaterialId" not in meta and "ValidTo" not in meta, f"{spec} metadata")
    ok(kms.get_public_key(KeyId=key_id)["PublicKey"] == spki(priv.public_key()), f"{spec} public key")
    msg = b"release artefact"
    sig = kms.sign(KeyId=key_id, Message=msg, MessageType="RAW", SigningAlgorithm=sig_alg)["Signature"]
    hname = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[sig_alg[-3:]]
    if spec.startswith("ECC"):
        priv.public_key().verify(sig, msg, ec.ECDSA(hname()))
        digest = hashlib.new(hname.name, msg).digest()
        sig2 = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=sig_alg)["Signature"]
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
        priv.public_key().verify(sig2, digest, ec.ECDSA(Prehashed(hname())))
    else:
        priv.public_key().verify(sig, msg, padding.PKCS1v15(), hname())
        pss = kms.sign(KeyId=key_id, Message=msg, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
        priv.public_key().verify(pss, msg, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    ok(kms.verify(KeyId=key_id, Message=msg, Signature=sig, SigningAlgorithm=sig_alg)["SignatureValid"], "verify")
    expect_error("KMSInvalidSignatureException", kms.verify, KeyId=key_id, Message=b"other", Signature=sig,
                 SigningAlgorithm=sig_alg)
    checks += 1

# RSA encryption key: KMS decrypts what `cryptography` encrypts with the public key.
priv = rsa.generate_private_key(65537, 3072)
key_id = kms.create_key(Origin="EXTERNAL", KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
p = params(key_id, "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048")
kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"],
                        EncryptedKeyMaterial=wrap("RSA_AES_KEY_WRAP_SHA_1", p["PublicKey"], pkcs8(priv)),
                        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
ct = priv.public_key().encrypt(b"for kms", oaep(hashes.SHA256))
ok(kms.decrypt(KeyId=key_id, CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"for kms",
   "RSA decrypt")
ct2 = kms.encrypt(KeyId=key_id, Plaintext=b"from kms", EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
ok(priv.decrypt(ct2, oaep(hashes.SHA1)) == b"from kms", "RSA encrypt")

# --- HMAC: MACs equal Python's hmac
for spec, n, h in (("HMAC_224", 28, "sha224"), ("HMAC_256", 32, "sha256"), ("HMAC_384", 48, "sha384"),
                   ("HMAC_512", 64, "sha512")):
    key = os.urandom(n)
    key_id = kms.create_key(Origin="EXTERNAL", KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    p = params(key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
    kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"],
                            EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p["PublicKey"], key),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    alg = "HMAC_SHA_" + spec[5:]
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm=alg)["Mac"]
    ok(mac == hmac.new(key, b"m", h).digest(), f"{spec} MAC")
    ok(kms.verify_mac(KeyId=key_id, Message=b"m", MacAlgorithm=alg, Mac=mac)["MacValid"], "verify mac")
    expect_error("KMSInvalidMacException", kms.verify_mac, KeyId=key_id, Message=b"n", MacAlgorithm=alg, Mac=mac)
    ok(kms.describe_key(KeyId=key_id)["KeyMetadata"]["MacAlgorithms"] == [alg], "mac algorithms")

# --- symmetric: every error leaves the key as it was
material = os.urandom(32)
key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
other_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
p = params(key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
good = wrap("RSAES_OAEP_SHA_256", p["PublicKey"], material)
far = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
base = dict(KeyId=key_id, ImportToken=p["ImportToken"], EncryptedKeyMaterial=good)
expect_error("ValidationException", kms.import_key_material, **base)  # ValidTo required by default
expect_error("ValidationException", kms.import_key_material, **base,
             ValidTo=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1))
expect_error("ValidationException", kms.import_key_material, **base,
             ValidTo=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400))
expect_error("ValidationException", kms.import_key_material, **base, ValidTo=far,
             ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
expect_error("InvalidImportTokenException", kms.import_key_material, KeyId=key_id, ImportToken=b"garbage" * 10,
             EncryptedKeyMaterial=good, ValidTo=far)
tampered = bytearray(p["ImportToken"]); tampered[40] ^= 1
expect_error("InvalidImportTokenException", kms.import_key_material, KeyId=key_id, ImportToken=bytes(tampered),
             EncryptedKeyMaterial=good, ValidTo=far)
p_other = params(other_id, "RSAES_OAEP_SHA_256", "RSA_2048")
expect_error("InvalidImportTokenException", kms.import_key_material, KeyId=key_id, ImportToken=p_other["ImportToken"],
             EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p_other["PublicKey"], material), ValidTo=far)
expect_error("InvalidCiphertextException", kms.import_key_material, KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=os.urandom(256), ValidTo=far)
expect_error("InvalidCiphertextException", kms.import_key_material, KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_1", p["PublicKey"], material), ValidTo=far)
expect_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p["PublicKey"], os.urandom(16)), ValidTo=far)
expect_error("UnsupportedOperationException", kms.get_parameters_for_import,
             KeyId=kms.create_key()["KeyMetadata"]["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
             WrappingKeySpec="RSA_2048")
expect_error("ValidationException", kms.get_parameters_for_import, KeyId=key_id,
             WrappingAlgorithm="RSAES_PKCS1_V1_5", WrappingKeySpec="RSA_2048")
expect_error("NotFoundException", kms.get_parameters_for_import, KeyId="alias/whatever",
             WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
ok(state(key_id) == "PendingImport", "errors changed nothing")

# Short ValidTo: expiry observed, then the same material re-imported.
soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)
r = kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"], EncryptedKeyMaterial=good, ValidTo=soon)
ok(len(r["KeyMaterialId"]) == 64, "KeyMaterialId")
meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
ok(meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and "ValidTo" in meta,
   "expiring import")
ok(meta["CurrentKeyMaterialId"] == r["KeyMaterialId"], "current material id")
ct = kms.encrypt(KeyId=key_id, Plaintext=b"before expiry")["CiphertextBlob"]
time.sleep(5)
meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
ok(meta["KeyState"] == "PendingImport" and not meta["Enabled"] and "ExpirationModel" not in meta, "expired")
ok(meta["CurrentKeyMaterialId"] == r["KeyMaterialId"], "material id kept after expiry")
expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=ct)
kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"], EncryptedKeyMaterial=good,
                        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
ok(kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"before expiry", "re-import restores")
expect_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p["PublicKey"], os.urandom(32)),
             ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
expect_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=good, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE", KeyMaterialId="0" * 64)

# Rotation of imported material (2025): NEW_KEY_MATERIAL pending, RotateKeyOnDemand promotes it.
new_material = os.urandom(32)
expect_error("KMSInvalidStateException", kms.rotate_key_on_demand, KeyId=key_id)
r2 = kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"], ImportType="NEW_KEY_MATERIAL",
                             EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p["PublicKey"], new_material),
                             ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE", KeyMaterialDescription="second")
ok(kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == r["KeyMaterialId"], "pending not current")
expect_error("KMSInvalidStateException", kms.import_key_material, KeyId=key_id, ImportToken=p["ImportToken"],
             ImportType="NEW_KEY_MATERIAL", EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p["PublicKey"], os.urandom(32)),
             ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
expect_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=key_id, ImportToken=p["ImportToken"],
             ImportType="NEW_KEY_MATERIAL", EncryptedKeyMaterial=good, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
rots = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
ok([x["KeyMaterialState"] for x in rots] == ["CURRENT", "PENDING_ROTATION"], "pending rotation listed")
ok(rots[1]["KeyMaterialDescription"] == "second" and rots[1]["ImportState"] == "IMPORTED", "rotation entry")
kms.rotate_key_on_demand(KeyId=key_id)
ok(kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == r2["KeyMaterialId"], "rotated")
ok(kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"before expiry", "old material still decrypts")
ct_new = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
ok(kms.decrypt(CiphertextBlob=ct_new)["KeyMaterialId"] == r2["KeyMaterialId"], "new material encrypts")
rots = kms.list_key_rotations(KeyId=key_id)["Rotations"]
ok(len(rots) == 1 and rots[0]["RotationType"] == "ON_DEMAND", "rotations only")
d = kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=r["KeyMaterialId"])
ok(d["KeyMaterialId"] == r["KeyMaterialId"] and state(key_id) == "PendingImport", "delete old material")
rots = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
ok([x["ImportState"] for x in rots] == ["PENDING_IMPORT", "IMPORTED"], "import states")
kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"], EncryptedKeyMaterial=good,
                        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE", KeyMaterialId=r["KeyMaterialId"])
ok(state(key_id) == "Enabled", "all materials back")
print(f"{checks} checks passed")
