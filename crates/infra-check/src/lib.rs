//! segcast-infra-check: keeps `terraform/` and the code in step.
//!
//! terraform cannot be planned here (no provider downloads), so this reads the configuration with `hcl-rs`,
//! evaluates it ([`model`]) and checks it ([`check::check`]) against what the code expects ([`code`]): the
//! topic, subscription, table, index, environment variable and secret names (computed by the segcast crate
//! itself from each service's environment, e.g. `Settings::delivery_topic`), the log tables' schema against
//! `DeliveryLogRow`, the DDL being the `sql/` files, OIDC + retry + dead-letter on every push subscription,
//! the console's environment as `ConsoleSettings` reads it (IAP, segment datasets it may read), the channel
//! secret store (`SEGCAST_CHANNEL_SECRETS`) with the permissions each service's code needs on it, every
//! service account's roles, their conditions and custom roles against the reviewed tables ([`roles`]), that
//! the console can read the LINE channel secrets and no other secret, and no public access except to the click
//! redirect.
//!
//! `check` takes a model, so tests feed it mutated copies of the configuration ([`model::Sources::replace`]).

pub mod check;
pub mod code;
pub mod model;
pub mod roles;

pub use check::{Problem, check};
pub use code::Code;
pub use model::{Model, Sources};

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `crates/infra-check`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Checks `terraform/` of the repository at `repo`.
pub fn check_repo(repo: &Path) -> anyhow::Result<Vec<Problem>> {
    let model = Model::load(&repo.join("terraform"))?;
    let code = Code::from_crate(repo)?;
    Ok(check(&model, &code))
}
