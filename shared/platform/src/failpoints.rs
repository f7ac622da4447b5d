//! Named fail points: deterministic crashes and delays at the exact places
//! where a message-driven system can lose or duplicate work.
//!
//! Crash windows cannot be tested by timing luck (kill the process "soon after"
//! a commit and hope it lands between two statements). Instead the relay and
//! the consumer name the dangerous gaps, and a test arms one of them through
//! the `FAILPOINTS` variable (`name=action;name=action`, the syntax of the
//! `fail` crate) when it starts a service:
//!
//! | fail point | where | what a crash there must not do |
//! |---|---|---|
//! | `relay.before-publish` | rows claimed, nothing published | lose the committed event |
//! | `relay.after-publish` | published, not yet marked | publish it twice without the inbox absorbing it |
//! | `consumer.after-commit` | effect and inbox committed, message not deleted | apply it twice |
//! | `consumer.handle` | before the handler runs (`return(ms)` delays it) | let a slow handler be run twice |
//!
//! Actions: `return` at a crash point kills the process with SIGKILL, as
//! `kill -9` would; `return(ms)` at a delay point waits that long
//! (asynchronously, so the rest of the service keeps running). `1*return`
//! fires once.
//!
//! The points exist only in a build with the `failpoints` cargo feature,
//! which no shipped build turns on: `scripts/demo.sh`, `cargo build
//! --workspace` and the Dockerfile leave them out. The tests' builds ask for
//! them: `scripts/build-failpoint-services.sh` builds the three services with
//! the feature into `target/<profile>/failpoints/`, where the stack launcher
//! takes a service from whenever its environment arms `FAILPOINTS`. A service
//! given `FAILPOINTS` without the feature refuses to start rather than
//! ignoring it.

use crate::config::ConfigError;

/// The variable that arms fail points.
pub const VARIABLE: &str = "FAILPOINTS";

pub const RELAY_BEFORE_PUBLISH: &str = "relay.before-publish";
pub const RELAY_AFTER_PUBLISH: &str = "relay.after-publish";
pub const CONSUMER_AFTER_COMMIT: &str = "consumer.after-commit";
pub const CONSUMER_HANDLE: &str = "consumer.handle";

/// Arms the fail points described by `spec` (`name=action;...`).
pub fn configure(spec: &str) -> Result<(), ConfigError> {
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, action) = entry.split_once('=').ok_or_else(|| {
            ConfigError::new(VARIABLE, format!("entry '{entry}' is not name=action"))
        })?;
        arm(name.trim(), action.trim())?;
    }
    Ok(())
}

#[cfg(feature = "failpoints")]
fn arm(name: &str, action: &str) -> Result<(), ConfigError> {
    const KNOWN: [&str; 4] = [
        RELAY_BEFORE_PUBLISH,
        RELAY_AFTER_PUBLISH,
        CONSUMER_AFTER_COMMIT,
        CONSUMER_HANDLE,
    ];
    if !KNOWN.contains(&name) {
        return Err(ConfigError::new(
            VARIABLE,
            format!(
                "names an unknown fail point '{name}' (known: {})",
                KNOWN.join(", ")
            ),
        ));
    }
    fail::cfg(name, action)
        .map_err(|e| ConfigError::new(VARIABLE, format!("action '{action}' for {name}: {e}")))
}

#[cfg(not(feature = "failpoints"))]
fn arm(name: &str, _action: &str) -> Result<(), ConfigError> {
    Err(ConfigError::new(
        VARIABLE,
        format!(
            "arms '{name}', but this build has no fail points (build with --features failpoints)"
        ),
    ))
}

/// Kills the process here when the point is armed with `return`.
#[cfg(feature = "failpoints")]
pub fn crash_point(name: &str) {
    if fail::eval(name, |_| ()).is_some() {
        tracing::error!(fail_point = name, "fail point reached: killing the process");
        // As `kill -9`: no destructor, no flush, no graceful anything.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn crash_point(_name: &str) {}

/// Waits here for the armed `return(ms)`.
#[cfg(feature = "failpoints")]
pub async fn delay_point(name: &str) {
    if let Some(ms) = fail::eval(name, |arg| arg.and_then(|a| a.parse::<u64>().ok())).flatten() {
        tracing::warn!(fail_point = name, ms, "fail point reached: delaying");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub async fn delay_point(_name: &str) {}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::*;

    #[test]
    fn unknown_points_and_bad_entries_name_the_variable() {
        let err = configure("relay.nowhere=return").expect_err("unknown");
        assert_eq!(err.name, VARIABLE);
        let err = configure("relay.before-publish").expect_err("no action");
        assert!(err.to_string().contains("not name=action"), "{err}");
    }
}

#[cfg(all(test, not(feature = "failpoints")))]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_fail_points_refuses_to_arm_one() {
        let err = configure("relay.before-publish=return").expect_err("no fail points");
        assert_eq!(err.name, VARIABLE);
        assert!(configure("").is_ok());
    }
}
