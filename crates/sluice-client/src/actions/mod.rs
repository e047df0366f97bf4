//! The requests a person sends to steer a Rollout, an Experiment or an AnalysisRun.
//!
//! Every action is two halves. The pure half ([`rules`]) decides from the object as read
//! whether the action makes sense ([`check`]) and which requests it is
//! ([`requests`]); they are exactly COMPAT §7's (what `kubectl argo rollouts` and Argo CD
//! send), so either tool can steer either controller. The other half reads the object,
//! applies the rules and sends the requests in order. A refused action sends nothing.

pub mod experiment;
pub mod rules;
pub mod set_image;
pub mod undo;

use chrono::{DateTime, Utc};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use sluice_api::rollout::{Rollout, rollout_resource};

use crate::error::{Error, kind};
use crate::world::decode;

pub use rules::{check, requests};

/// An action on a Rollout that needs nothing but the Rollout (the dashboard's buttons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Continue to the next step (or clear a pause).
    Promote,
    /// Skip every remaining step, analysis and pause.
    PromoteFull,
    /// Go back to the stable ReplicaSet.
    Abort,
    /// Start an aborted update again from the first step.
    Retry,
    /// Set `spec.paused`.
    Pause,
    /// Clear every pause (Argo CD's *resume* action).
    Resume,
    /// Restart the pods (sets `spec.restartAt`).
    Restart,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Promote,
        Action::PromoteFull,
        Action::Abort,
        Action::Retry,
        Action::Pause,
        Action::Resume,
        Action::Restart,
    ];

    /// The name in URLs and JSON (`promote-full`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::PromoteFull => "promote-full",
            Action::Abort => "abort",
            Action::Retry => "retry",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Restart => "restart",
        }
    }

    /// The action named `name`.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// What the one-line result says was done (upstream's words).
    fn done(self, name: &str) -> String {
        match self {
            Action::Promote => format!("rollout '{name}' promoted"),
            Action::PromoteFull => format!("rollout '{name}' fully promoted"),
            Action::Abort => format!("rollout '{name}' aborted"),
            Action::Retry => format!("rollout '{name}' retried"),
            Action::Pause => format!("rollout '{name}' paused"),
            Action::Resume => format!("rollout '{name}' resumed"),
            Action::Restart => format!("rollout '{name}' restarts"),
        }
    }
}

/// One request of an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A merge patch on `/status` (on the main resource when the server has no status
    /// subresource, as upstream's client falls back).
    Status(Value),
    /// A merge patch on the main resource.
    Spec(Value),
}

/// When to restart (`restart --in`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delay before the restart; zero restarts now.
    pub restart_in: std::time::Duration,
}

/// The Rollout API in `namespace`.
pub fn rollouts(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &rollout_resource())
}

/// Read and decode one Rollout.
pub async fn get_rollout(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Rollout, Error> {
    let obj = rollouts(client, namespace)
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, "get", kind::ROLLOUT, namespace, name))?;
    decode::<Rollout>(obj).map_err(|message| Error::Decode {
        kind: kind::ROLLOUT,
        name: name.to_string(),
        message,
    })
}

/// Run `action` on a Rollout: read it, refuse or send the requests, and say what was done
/// in one line.
pub async fn run(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    action: Action,
    options: Options,
) -> Result<String, Error> {
    let rollout = get_rollout(client, namespace, name).await?;
    check(action, &rollout).map_err(|reason| Error::Refused {
        kind: kind::ROLLOUT,
        name: name.to_string(),
        reason,
    })?;
    let now: DateTime<Utc> = Utc::now();
    let at = now + chrono::TimeDelta::from_std(options.restart_in).unwrap_or_default();
    let api = rollouts(client, namespace);
    for request in requests(action, &rollout, at) {
        send(&api, namespace, name, &request).await?;
    }
    let mut line = action.done(name);
    if action == Action::Restart {
        line += &format!(" in {}", humanize(options.restart_in));
    }
    Ok(line)
}

/// Send one request.
pub async fn send(
    api: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
    request: &Request,
) -> Result<(), Error> {
    let params = PatchParams::default();
    let failed = |e| Error::from_kube(e, "patch", kind::ROLLOUT, namespace, name);
    match request {
        Request::Status(patch) => match api.patch_status(name, &params, &Patch::Merge(patch)).await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                api.patch(name, &params, &Patch::Merge(patch))
                    .await
                    .map_err(failed)?;
                Ok(())
            }
            Err(e) => Err(failed(e)),
        },
        Request::Spec(patch) => {
            api.patch(name, &params, &Patch::Merge(patch))
                .await
                .map_err(failed)?;
            Ok(())
        }
    }
}

/// A delay the way people write it (`0s`, `30s`, `5m`, `1h30m`).
pub fn humanize(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 {
        out += &format!("{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_name("explode"), None);
    }

    #[test]
    fn delays_read_like_durations() {
        let s = std::time::Duration::from_secs;
        assert_eq!(humanize(s(0)), "0s");
        assert_eq!(humanize(s(30)), "30s");
        assert_eq!(humanize(s(300)), "5m");
        assert_eq!(humanize(s(5430)), "1h30m30s");
    }
}
