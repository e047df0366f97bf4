//! The pure decision core: no Kubernetes client, no async runtime, no clock.
pub mod canary;
pub mod hash;
pub mod intstr;
pub mod observed;
pub mod plan;
pub mod replicas;
pub mod status;
pub mod validate;

#[cfg(test)]
pub(crate) mod testing;

pub use canary::plan;
pub use observed::Observed;
pub use plan::{Change, EventType, MetadataPatch, Plan};
pub use validate::{InvalidSpec, validate};
