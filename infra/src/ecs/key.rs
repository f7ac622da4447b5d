//! The customer managed key of the compute stack: the services' log groups,
//! their database secrets and the databases' storage.
//!
//! A key of its own rather than the messaging stack's: that key's policy is
//! written for SNS, EventBridge and SQS, and CloudWatch Logs can use a key
//! only when the key policy names it. Secrets Manager and RDS use it on behalf
//! of the principals the account allows through IAM (the first statement).

use serde_json::{Map, Value, json};

/// The logical id of the key.
pub(super) const KEY: &str = "ComputeKey";

/// The prefix of every log group of the stack, which the key policy lets
/// CloudWatch Logs encrypt for.
pub(super) const LOG_GROUP_PREFIX: &str = "/ecs/${AWS::StackName}/";

pub(super) fn add(resources: &mut Map<String, Value>) {
    resources.insert(
        KEY.into(),
        json!({
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": {"Fn::Sub": "${AWS::StackName}: encrypts the services' logs, database secrets and databases"},
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
        "ComputeKeyAlias".into(),
        json!({
            "Type": "AWS::KMS::Alias",
            "Properties": {
                "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-compute"},
                "TargetKeyId": {"Ref": KEY}
            }
        }),
    );
}
