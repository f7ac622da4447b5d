//! The customer managed key of the Lambda stack: the functions' log groups
//! and their environment (which holds `DATABASE_URL`, password included).
//!
//! A key of its own, as the ECS stack has: CloudWatch Logs can use a key only
//! when the key policy names it, and neither other stack's key is written for
//! these log groups. Lambda uses it for the environment through a grant it
//! creates with the deployer's permissions, which the first statement lets
//! the account give through IAM; the execution roles need nothing on it.

use serde_json::{Map, Value, json};

/// The logical id of the key.
pub(super) const KEY: &str = "FunctionsKey";

/// The prefix of every log group of the stack, which the key policy lets
/// CloudWatch Logs encrypt for.
pub(super) const LOG_GROUP_PREFIX: &str = "/lambda/${AWS::StackName}/";

pub(super) fn add(resources: &mut Map<String, Value>) {
    resources.insert(
        KEY.into(),
        json!({
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": {"Fn::Sub": "${AWS::StackName}: encrypts the functions' logs and environment"},
                "EnableKeyRotation": true,
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "TheAccountAdministersTheKeyThroughIam",
                            "Effect": "Allow",
                            "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                            "Action": "kms:*",
                            "Resource": "*"
                        },
                        {
                            "Sid": "CloudWatchLogsEncryptsTheStacksLogGroups",
                            "Effect": "Allow",
                            "Principal": {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}},
                            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                            "Resource": "*",
                            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": {
                                "Fn::Sub": format!("arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{LOG_GROUP_PREFIX}*")
                            }}}
                        }
                    ]
                }
            }
        }),
    );
    resources.insert(
        "FunctionsKeyAlias".into(),
        json!({
            "Type": "AWS::KMS::Alias",
            "Properties": {
                "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-functions"},
                "TargetKeyId": {"Ref": KEY}
            }
        }),
    );
}
