//! The environment a running stack hands to clients, and the env file (`.local/stacks/<name>/env`, lines
//! `export K=V`) that a shell can source and that [`crate::Stack::attach_env_file`] reads back.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;

pub const PUBSUB_EMULATOR_HOST: &str = "PUBSUB_EMULATOR_HOST";
pub const DATASTORE_EMULATOR_HOST: &str = "DATASTORE_EMULATOR_HOST";
pub const STORAGE_EMULATOR_HOST: &str = "STORAGE_EMULATOR_HOST";
pub const BIGQUERY_EMULATOR_HOST: &str = "BIGQUERY_EMULATOR_HOST";
pub const BIGQUERY_GRPC_EMULATOR_HOST: &str = "BIGQUERY_GRPC_EMULATOR_HOST";
pub const LINE_API_BASE_URL: &str = "LINE_API_BASE_URL";
pub const GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
pub const SEGCAST_BUCKET: &str = "SEGCAST_BUCKET";
pub const SEGCAST_STACK_PID: &str = "SEGCAST_STACK_PID";
pub const SEGCAST_STACK_NAME: &str = "SEGCAST_STACK_NAME";

/// Where a stack's services listen, as clients need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEnv {
    /// `127.0.0.1:P` (REST and gRPC), as `PUBSUB_EMULATOR_HOST`.
    pub pubsub_host: String,
    /// `127.0.0.1:P` (Datastore v1 REST and gRPC), as `DATASTORE_EMULATOR_HOST`.
    pub datastore_host: String,
    /// `http://127.0.0.1:P`: the GCS JSON API (through the export bridge), as `STORAGE_EMULATOR_HOST`.
    pub storage_url: String,
    /// `http://127.0.0.1:R`: BigQuery REST, as `BIGQUERY_EMULATOR_HOST`.
    pub bigquery_url: String,
    /// `http://127.0.0.1:G`: BigQuery Storage Read/Write gRPC, as `BIGQUERY_GRPC_EMULATOR_HOST`.
    pub bigquery_grpc_url: String,
    /// `http://127.0.0.1:L`: the fake LINE API, as `LINE_API_BASE_URL`.
    pub line_url: String,
    pub project_id: String,
    pub bucket: String,
    /// The process that supervises (owns) the stack.
    pub stack_pid: u32,
    pub stack_name: String,
}

impl StackEnv {
    /// The variables, in a stable order.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            (PUBSUB_EMULATOR_HOST, self.pubsub_host.clone()),
            (DATASTORE_EMULATOR_HOST, self.datastore_host.clone()),
            (STORAGE_EMULATOR_HOST, self.storage_url.clone()),
            (BIGQUERY_EMULATOR_HOST, self.bigquery_url.clone()),
            (BIGQUERY_GRPC_EMULATOR_HOST, self.bigquery_grpc_url.clone()),
            (LINE_API_BASE_URL, self.line_url.clone()),
            (GOOGLE_CLOUD_PROJECT, self.project_id.clone()),
            (SEGCAST_BUCKET, self.bucket.clone()),
            (SEGCAST_STACK_PID, self.stack_pid.to_string()),
            (SEGCAST_STACK_NAME, self.stack_name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Reads the variables through `get` (e.g. the process environment); all but the name are required.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let req = |key: &str| {
            get(key)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("{key} is not set"))
        };
        Ok(Self {
            pubsub_host: req(PUBSUB_EMULATOR_HOST)?,
            datastore_host: req(DATASTORE_EMULATOR_HOST)?,
            storage_url: req(STORAGE_EMULATOR_HOST)?,
            bigquery_url: req(BIGQUERY_EMULATOR_HOST)?,
            bigquery_grpc_url: req(BIGQUERY_GRPC_EMULATOR_HOST)?,
            line_url: req(LINE_API_BASE_URL)?,
            project_id: req(GOOGLE_CLOUD_PROJECT)?,
            bucket: req(SEGCAST_BUCKET)?,
            stack_pid: req(SEGCAST_STACK_PID)?
                .parse()
                .context("SEGCAST_STACK_PID is not a PID")?,
            stack_name: get(SEGCAST_STACK_NAME).unwrap_or_default(),
        })
    }

    /// From this process's environment.
    pub fn from_process_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The env file's text: one `export K=V` line per variable.
    pub fn render(&self) -> String {
        let mut out = String::from("# Written by segcast-stack; source it: `. <this file>`\n");
        for (key, value) in self.vars() {
            out.push_str(&format!("export {key}={}\n", shell_quote(&value)));
        }
        out
    }

    /// Parses an env file (as written by [`StackEnv::render`]).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let vars = parse_env_lines(text)?;
        Self::from_lookup(|k| vars.get(k).cloned())
    }

    pub fn write_file(&self, path: &Path) -> anyhow::Result<()> {
        crate::install::write_atomic(path, self.render().as_bytes())
    }

    pub fn read_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Leaves shell-safe values bare; single-quotes the rest.
fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,=".contains(c));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// `[export ]K=V` lines; V bare, `'single'` (with `'\''` escapes) or `"double"` quoted. `#` comments.
pub fn parse_env_lines(text: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut vars = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, raw) = line
            .split_once('=')
            .with_context(|| format!("line {}: expected K=V", n + 1))?;
        vars.insert(key.trim().to_string(), unquote(raw.trim()));
    }
    Ok(vars)
}

fn unquote(raw: &str) -> String {
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return raw[1..raw.len() - 1].to_string();
    }
    // Concatenated single-quoted pieces and escaped quotes: 'a'\''b' -> a'b
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => out.extend(chars.by_ref().take_while(|&c| c != '\'')),
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StackEnv {
        StackEnv {
            pubsub_host: "127.0.0.1:1001".into(),
            datastore_host: "127.0.0.1:1002".into(),
            storage_url: "http://127.0.0.1:1003".into(),
            bigquery_url: "http://127.0.0.1:1004".into(),
            bigquery_grpc_url: "http://127.0.0.1:1005".into(),
            line_url: "http://127.0.0.1:1006".into(),
            project_id: "segcast-local".into(),
            bucket: "it's a bucket".into(),
            stack_pid: 4242,
            stack_name: "dev".into(),
        }
    }

    #[test]
    fn render_parse_roundtrip() {
        let env = sample();
        let text = env.render();
        assert!(text.contains("export PUBSUB_EMULATOR_HOST=127.0.0.1:1001\n"));
        assert!(text.contains("export STORAGE_EMULATOR_HOST=http://127.0.0.1:1003\n"));
        assert!(text.contains("export SEGCAST_BUCKET='it'\\''s a bucket'\n"));
        assert_eq!(StackEnv::parse(&text).unwrap(), env);
    }

    #[test]
    fn the_shell_reads_it_the_same_way() {
        let env = sample();
        let dir = std::env::temp_dir().join(format!("devstack-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("env");
        env.write_file(&path).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#". "$1" && printf '%s|%s|%s' "$SEGCAST_BUCKET" "$BIGQUERY_GRPC_EMULATOR_HOST" "$SEGCAST_STACK_PID""#)
            .arg("sh")
            .arg(&path)
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "it's a bucket|http://127.0.0.1:1005|4242"
        );
        assert_eq!(StackEnv::read_file(&path).unwrap(), env);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_variables_are_named() {
        let err = StackEnv::parse("export PUBSUB_EMULATOR_HOST=x\n").unwrap_err();
        assert!(err.to_string().contains("DATASTORE_EMULATOR_HOST"), "{err}");
    }
}
