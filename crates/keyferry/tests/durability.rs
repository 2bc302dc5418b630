//! Restart and `kill -9` durability, and no key material in plaintext under the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{AlgorithmSpec, OriginType, WrappingKeySpec};
use common::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_material_is_never_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, &[]);
    let kms = server.sdk().await;

    // An imported key whose material we know.
    let material: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let imported = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    common::import_material(
        &kms,
        &imported,
        AlgorithmSpec::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    // A generated key, an alias, and ciphertexts under both.
    let generated = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.create_alias()
        .alias_name("alias/durable")
        .target_key_id(&generated)
        .send()
        .await
        .unwrap();
    let mut cts = Vec::new();
    for key in [&imported, &generated] {
        let ct = kms
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(b"survive".to_vec()))
            .send()
            .await
            .unwrap();
        cts.push(ct.ciphertext_blob.unwrap());
    }
    let dk = kms
        .generate_data_key()
        .key_id(&generated)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let data_key = dk.plaintext.unwrap().into_inner();

    server.kill9();

    for (needle, what) in [
        (material.clone(), "imported material"),
        (
            hex::encode(&material).into_bytes(),
            "imported material as hex",
        ),
        (
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &material)
                .into_bytes(),
            "material as base64",
        ),
        (data_key.clone(), "data key plaintext"),
    ] {
        assert_eq!(
            common::bytes_occur_under(&data, &needle),
            None,
            "{what} found in plaintext"
        );
    }

    let server = Server::start_in(&data, &[]);
    let kms = server.sdk().await;
    for ct in cts {
        let pt = kms.decrypt().ciphertext_blob(ct).send().await.unwrap();
        assert_eq!(pt.plaintext.unwrap().as_ref(), b"survive");
    }
    let pt = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), data_key.as_slice());
    let meta = kms
        .describe_key()
        .key_id("alias/durable")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_id, generated);
}

#[test]
fn refuses_public_listen_without_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyferry"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(tmp.path())
        .env_remove("KEYFERRY_ACCESS_KEY_ID")
        .env_remove("KEYFERRY_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYFERRY_ACCESS_KEY_ID"));
}

#[cfg(unix)]
#[test]
fn root_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    let mode = std::fs::metadata(server.data.join("root.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
