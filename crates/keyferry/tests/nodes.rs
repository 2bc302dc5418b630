//! Two stateless server nodes sharing one PostgreSQL database (and one root key): what one node
//! writes, the other serves, including import tokens issued by the other node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{AlgorithmSpec, ExpirationModelType, OriginType, WrappingKeySpec};
use common::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_postgresql_database() {
    let Ok(url) = std::env::var("KEYFERRY_TEST_POSTGRES_URL") else {
        println!("skipped: KEYFERRY_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.key");
    std::fs::write(&root, [42u8; 32]).unwrap();
    let root_arg = root.to_str().unwrap();
    let flags = [
        "--database-url",
        url.as_str(),
        "--root-key-file",
        root_arg,
        "--cache-ttl-ms",
        "200",
    ];
    let a = Server::start_in(&tmp.path().join("a"), &flags);
    let b = Server::start_in(&tmp.path().join("b"), &flags);
    let (ka, kb) = (a.sdk().await, b.sdk().await);

    let key = ka
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let ct = ka
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"shared".to_vec()))
        .send()
        .await
        .unwrap();
    let pt = kb
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"shared");

    // A change on one node is seen by the other within its cache TTL.
    kb.disable_key().key_id(&key).send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let err = ka
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_disabled_exception(),
        "{err:?}"
    );

    // Import parameters from node A, import through node B.
    let ext = ka
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let params = ka
        .get_parameters_for_import()
        .key_id(&ext)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let wrapped = keyferry_crypto::wrap::wrap(
        keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_256,
        params.public_key.unwrap().as_ref(),
        &[9u8; 32],
    )
    .unwrap();
    kb.import_key_material()
        .key_id(&ext)
        .import_token(params.import_token.unwrap())
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let ct = ka
        .encrypt()
        .key_id(&ext)
        .plaintext(Blob::new(b"byok".to_vec()))
        .send()
        .await
        .unwrap();
    let pt = kb
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"byok");
}
