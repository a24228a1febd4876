//! Where things live: the workspace root, its git-ignored `.local/` directory and a stack's state dir.

use std::path::{Path, PathBuf};

/// Overrides the `.local/` directory (absolute path), e.g. to share one install between checkouts.
pub const LOCAL_DIR_VAR: &str = "SEGCAST_LOCAL_DIR";

/// The workspace root: the nearest ancestor of the current directory whose `Cargo.toml` declares
/// `[workspace]` and which holds `crates/devstack`; failing that, the workspace this crate was built in.
pub fn workspace_root() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir()
        && let Some(root) = find_workspace_root(&cwd)
    {
        return root;
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR"));
    find_workspace_root(built_in).unwrap_or_else(|| built_in.join("../.."))
}

fn find_workspace_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        (manifest.contains("[workspace]") && dir.join("crates/devstack").is_dir())
            .then(|| dir.to_path_buf())
    })
}

/// The project-local, git-ignored directory holding the venv, the pinned HOME and the stacks.
pub fn local_dir() -> PathBuf {
    match std::env::var_os(LOCAL_DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".local"),
    }
}

/// `<local>/stacks`: one sub-directory per named stack.
pub fn stacks_dir(local: &Path) -> PathBuf {
    local.join("stacks")
}

/// `<local>/stacks/<name>`: a stack's data dirs, logs, pid file and env file.
pub fn stack_dir(local: &Path, name: &str) -> PathBuf {
    stacks_dir(local).join(name)
}

/// Stack names become directory names: keep them to `[A-Za-z0-9._-]`, not starting with a dot.
pub fn validate_stack_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    anyhow::ensure!(
        ok,
        "invalid stack name {name:?}: use 1-64 characters of [A-Za-z0-9._-], not starting with '.'"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_workspace() {
        let root = workspace_root();
        assert!(
            root.join("crates/devstack/Cargo.toml").is_file(),
            "{}",
            root.display()
        );
    }

    #[test]
    fn stack_names() {
        assert!(validate_stack_name("dev").is_ok());
        assert!(validate_stack_name("t-123_4.x").is_ok());
        for bad in ["", "..", ".x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_stack_name(bad).is_err(), "{bad:?}");
        }
    }
}
