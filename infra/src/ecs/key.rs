//! The customer managed key of the compute stack: the services' log groups,
//! their database secrets and the databases' storage.
//!
//! A key of its own rather than the messaging stack's: that key's policy is
//! written for SNS, EventBridge and SQS, and CloudWatch Logs can use a key
//! only when the key policy names it. Secrets Manager and RDS use it on behalf
//! of the principals the account allows through IAM (the first statement).

use serde_json::{Map, Value};

use crate::cloudformation::{customer_managed_key, key_alias, logs_may_use_key};

/// The logical id of the key.
pub(super) const KEY: &str = "ComputeKey";

/// The prefix of every log group of the stack, which the key policy lets
/// CloudWatch Logs encrypt for.
pub(super) const LOG_GROUP_PREFIX: &str = "/ecs/${AWS::StackName}/";

pub(super) fn add(resources: &mut Map<String, Value>) {
    resources.insert(
        KEY.into(),
        customer_managed_key(
            "encrypts the services' logs, database secrets and databases",
            vec![logs_may_use_key(LOG_GROUP_PREFIX)],
        ),
    );
    resources.insert("ComputeKeyAlias".into(), key_alias("compute", KEY));
}
