//! What people do with Rollouts, and what they see of them.
//!
//! `kubectl sluice` (the binary's `src/cli/`) and the dashboard (`sluice-dashboard`) are two
//! faces of the same client, and this crate is that client, once:
//!
//! - [`actions`]: the requests a person sends — promote, abort, retry, pause, resume,
//!   restart, undo, set image, terminate — exactly as `kubectl argo rollouts` and Argo CD send
//!   them (COMPAT §7), each refused with one sentence naming the object when it would do
//!   nothing or the wrong thing ([`actions::check`]), before anything is written.
//! - [`world`]: one Rollout's world — the Rollout, its ReplicaSets and their pods, its
//!   AnalysisRuns and Experiments, its recent Events — gathered from the API.
//! - [`live`]: the same worlds kept current from watches, for `get --watch`, `status` and the
//!   dashboard.
//! - [`view`]: what is shown of a world (pure): phase as a reader should trust it, the step
//!   list with the current step marked, desired vs *actual* weight, ReplicaSets with their
//!   roles, analysis measurements, experiments, events; serializable for the dashboard,
//!   rendered as text by the CLI.

pub mod actions;
pub mod error;
pub mod live;
pub mod phase;
pub mod view;
pub mod world;

pub use error::Error;
