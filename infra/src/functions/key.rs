//! The customer managed key of the Lambda stack: the functions' log groups
//! and their environment (which holds `DATABASE_URL`, password included).
//!
//! A key of its own, as the ECS stack has: CloudWatch Logs can use a key only
//! when the key policy names it, and neither other stack's key is written for
//! these log groups. Lambda uses it for the environment through a grant it
//! creates with the deployer's permissions, which the first statement lets
//! the account give through IAM; the execution roles need nothing on it.

use serde_json::{Map, Value};

use crate::cloudformation::{customer_managed_key, key_alias, logs_may_use_key};

/// The logical id of the key.
pub(super) const KEY: &str = "FunctionsKey";

/// The prefix of every log group of the stack, which the key policy lets
/// CloudWatch Logs encrypt for.
pub(super) const LOG_GROUP_PREFIX: &str = "/lambda/${AWS::StackName}/";

pub(super) fn add(resources: &mut Map<String, Value>) {
    resources.insert(
        KEY.into(),
        customer_managed_key(
            "encrypts the functions' logs and environment",
            vec![logs_may_use_key(LOG_GROUP_PREFIX)],
        ),
    );
    resources.insert("FunctionsKeyAlias".into(), key_alias("functions", KEY));
}
