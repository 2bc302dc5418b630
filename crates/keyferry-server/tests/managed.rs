//! AWS managed keys through the router (`app()`, real SQLite store): the predefined
//! `alias/aws/<service>` aliases, the key created behind one on first use, and the refusal of
//! every change to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Api;
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";

fn names(v: &Value) -> Vec<String> {
    v["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AliasName"].as_str().unwrap().to_string())
        .collect()
}

fn entry<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AliasName"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {v}"))
}

#[tokio::test]
async fn predefined_alias_creates_the_aws_managed_key_on_first_use() {
    let api = Api::new().await;
    // Before first use: listed without a target, nothing else.
    let listed = api.call("ListAliases", json!({})).await;
    let ebs = entry(&listed, "alias/aws/ebs");
    assert_eq!(
        ebs,
        &json!({"AliasName": "alias/aws/ebs", "AliasArn": format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/ebs")})
    );
    assert!(names(&listed).contains(&"alias/aws/s3".to_string()));
    assert_eq!(listed["Truncated"], false);
    let keys = api.call("ListKeys", json!({})).await;
    assert_eq!(keys["Keys"].as_array().unwrap().len(), 0);

    let meta = api
        .call("DescribeKey", json!({"KeyId": "alias/aws/ebs"}))
        .await["KeyMetadata"]
        .clone();
    let id = meta["KeyId"].as_str().unwrap().to_string();
    assert_eq!(meta["KeyManager"], "AWS");
    assert_eq!(
        meta["Description"],
        "Default key that protects my EBS volumes when no other key is defined"
    );
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["Enabled"], true);
    assert_eq!(meta["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(meta["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(meta["Origin"], "AWS_KMS");
    assert_eq!(
        meta["Arn"],
        format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}")
    );
    // The same key every time, by alias name or alias ARN.
    let again = api
        .call(
            "DescribeKey",
            json!({"KeyId": format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/ebs")}),
        )
        .await;
    assert_eq!(again["KeyMetadata"]["KeyId"], id.as_str());
    let keys = api.call("ListKeys", json!({})).await;
    assert_eq!(keys["Keys"].as_array().unwrap().len(), 1);

    // Now listed with its target; filtered by key, only it.
    let listed = api.call("ListAliases", json!({})).await;
    let ebs = entry(&listed, "alias/aws/ebs");
    assert_eq!(ebs["TargetKeyId"], id.as_str());
    assert!(ebs["CreationDate"].is_number());
    assert!(entry(&listed, "alias/aws/s3").get("TargetKeyId").is_none());
    let only = api.call("ListAliases", json!({"KeyId": id})).await;
    assert_eq!(names(&only), vec!["alias/aws/ebs".to_string()]);

    // Its policy: use through EC2 by the account's principals, read access for the account.
    let policy = api
        .call(
            "GetKeyPolicy",
            json!({"KeyId": id, "PolicyName": "default"}),
        )
        .await;
    let policy: Value = serde_json::from_str(policy["Policy"].as_str().unwrap()).unwrap();
    let use_stmt = &policy["Statement"][0];
    assert_eq!(use_stmt["Principal"], json!({"AWS": "*"}));
    assert_eq!(
        use_stmt["Condition"]["StringEquals"],
        json!({"kms:CallerAccount": ACCOUNT, "kms:ViaService": "ec2.us-east-1.amazonaws.com"})
    );
    assert_eq!(
        policy["Statement"][1]["Action"],
        json!(["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"])
    );

    // Rotated every year, always.
    let rotation = api.call("GetKeyRotationStatus", json!({"KeyId": id})).await;
    assert_eq!(rotation["KeyRotationEnabled"], true);
    assert_eq!(rotation["RotationPeriodInDays"], 365);

    // Another service's alias is another key, with its own description and ViaService.
    let s3 = api
        .call("DescribeKey", json!({"KeyId": "alias/aws/s3"}))
        .await["KeyMetadata"]
        .clone();
    assert_ne!(s3["KeyId"], id.as_str());
    assert_eq!(
        s3["Description"],
        "Default key that protects my S3 objects when no other key is defined"
    );
}

#[tokio::test]
async fn an_aws_managed_key_cannot_be_changed_or_used_directly() {
    let api = Api::new().await;
    let meta = api
        .call("DescribeKey", json!({"KeyId": "alias/aws/rds"}))
        .await["KeyMetadata"]
        .clone();
    let id = meta["KeyId"].as_str().unwrap().to_string();
    let arn = meta["Arn"].as_str().unwrap().to_string();
    let policy = api.call("GetKeyPolicy", json!({"KeyId": id})).await["Policy"]
        .as_str()
        .unwrap()
        .to_string();
    let denied = |action: &str| {
        format!(
            "User: arn:aws:iam::{ACCOUNT}:root is not authorized to perform: kms:{action} on resource: {arn} because no resource-based policy allows the kms:{action} action"
        )
    };
    let cases = [
        ("DisableKey", json!({"KeyId": id})),
        (
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        ),
        (
            "PutKeyPolicy",
            json!({"KeyId": id, "PolicyName": "default", "Policy": policy}),
        ),
        ("DisableKeyRotation", json!({"KeyId": id})),
        ("EnableKeyRotation", json!({"KeyId": id})),
        ("RotateKeyOnDemand", json!({"KeyId": id})),
        (
            "UpdateKeyDescription",
            json!({"KeyId": id, "Description": "mine"}),
        ),
        (
            "TagResource",
            json!({"KeyId": id, "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
        ),
        (
            "CreateAlias",
            json!({"AliasName": "alias/my-rds", "TargetKeyId": id}),
        ),
        // Direct use by a caller: the policy allows it only through the service.
        (
            "Encrypt",
            json!({"KeyId": "alias/aws/rds", "Plaintext": "aGVsbG8="}),
        ),
        (
            "GenerateDataKey",
            json!({"KeyId": "alias/aws/rds", "KeySpec": "AES_256"}),
        ),
    ];
    for (op, body) in cases {
        let (code, message) = api.error(op, body).await;
        assert_eq!(
            (code.as_str(), message),
            ("AccessDeniedException", Some(denied(op))),
            "{op}"
        );
    }
    // Nothing changed.
    let after = api.call("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"].clone();
    assert_eq!(after["KeyState"], "Enabled");
    assert_eq!(after["Description"], meta["Description"]);
    let tags = api.call("ListResourceTags", json!({"KeyId": id})).await;
    assert_eq!(tags["Tags"], json!([]));

    // The reserved prefix and names that are not predefined.
    let own = api.create(json!({})).await;
    let (code, _) = api
        .error(
            "CreateAlias",
            json!({"AliasName": "alias/aws/rds", "TargetKeyId": own}),
        )
        .await;
    assert_eq!(code, "InvalidAliasNameException");
    let (code, _) = api
        .error(
            "CreateAlias",
            json!({"AliasName": "alias/aws/mine", "TargetKeyId": own}),
        )
        .await;
    assert_eq!(code, "InvalidAliasNameException");
    let (code, message) = api
        .error("DescribeKey", json!({"KeyId": "alias/aws/nosuchservice"}))
        .await;
    assert_eq!(
        (code.as_str(), message.as_deref()),
        (
            "NotFoundException",
            Some(
                format!(
                    "Alias arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/nosuchservice is not found."
                )
                .as_str()
            )
        )
    );
}

#[tokio::test]
async fn list_aliases_pages_through_stored_and_predefined_aliases() {
    let api = Api::new().await;
    let key = api.create(json!({})).await;
    for name in [
        "alias/a-first",
        "alias/aws-like",
        "alias/b",
        "alias/zz-last",
    ] {
        api.call(
            "CreateAlias",
            json!({"AliasName": name, "TargetKeyId": key}),
        )
        .await;
    }
    api.call("DescribeKey", json!({"KeyId": "alias/aws/lambda"}))
        .await;
    let all = api.call("ListAliases", json!({"Limit": 100})).await;
    let all = names(&all);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 4 + 9);
    for limit in [1, 2, 3, 5] {
        let mut paged = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut body = json!({"Limit": limit});
            if let Some(m) = &marker {
                body["Marker"] = json!(m);
            }
            let page = api.call("ListAliases", body).await;
            let got = names(&page);
            assert!(got.len() <= limit, "{page}");
            paged.extend(got);
            if page["Truncated"] == true {
                marker = Some(page["NextMarker"].as_str().unwrap().to_string());
            } else {
                assert!(page.get("NextMarker").is_none());
                break;
            }
        }
        assert_eq!(paged, all, "limit {limit}");
    }
}
