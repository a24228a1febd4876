//! docker/Dockerfile and cloudbuild.yaml against terraform, statically (no docker here): every binary terraform
//! deploys has a runtime target in the Dockerfile and a Cloud Build step building it under the tag terraform
//! deploys; the workspace compiles once (one `cargo build`, in the Dockerfile's build stage, which exactly one
//! Cloud Build step builds and every image step reuses), in release mode with the locked dependency versions,
//! with the toolchain `make test` uses. Each rule has a test that breaks it on a copy of the text.

use segcast_infra_check::{Model, Sources, repo_root};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// The stage that compiles (the only one running cargo).
const BUILD_STAGE: &str = "build";
/// Where the build stage leaves the binaries, and where an image holds its one binary.
const OUT_DIR: &str = "/out";
const APP: &str = "/usr/local/bin/app";

/// The binaries terraform deploys: the image names of its Cloud Run services, with every optional service
/// on (the console, the log sink), evaluated as `terraform plan` would.
fn deployed() -> Vec<String> {
    static DEPLOYED: OnceLock<Vec<String>> = OnceLock::new();
    DEPLOYED.get_or_init(evaluate_deployed).clone()
}

fn evaluate_deployed() -> Vec<String> {
    let mut src = Sources::load(&repo_root().join("terraform")).expect("terraform/ loads");
    src.tfvars
        .push_str("\nenable_console = true\nenable_log_sink = true\n");
    let model = Model::from_sources(&src).expect("terraform/ parses");
    let names: BTreeSet<String> = model
        .all("google_cloud_run_v2_service")
        .map(|svc| {
            let image = svc
                .at_str("/template/0/containers/0/image")
                .expect("a service's image evaluates");
            let (name, tag) = image
                .rsplit('/')
                .next()
                .and_then(|n| n.split_once(':'))
                .expect("<registry>/<binary>:<tag>");
            assert!(!tag.is_empty(), "{image}");
            name.to_owned()
        })
        .collect();
    names.into_iter().collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One `FROM ... [AS name]` and its instructions (continuation lines joined, comments dropped).
#[derive(Debug)]
struct Stage {
    name: String,
    base: String,
    instructions: Vec<String>,
}

fn parse_dockerfile(text: &str) -> (Vec<(String, String)>, Vec<Stage>) {
    let mut args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                logical.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        logical.push(cur);
    }
    for ins in logical {
        let words: Vec<&str> = ins.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("FROM") => {
                let base = words
                    .iter()
                    .skip(1)
                    .find(|w| !w.starts_with("--"))
                    .copied()
                    .unwrap_or_default();
                let name = match words.iter().position(|w| w.eq_ignore_ascii_case("as")) {
                    Some(i) => words.get(i + 1).copied().unwrap_or_default(),
                    None => "",
                };
                stages.push(Stage {
                    name: name.to_owned(),
                    base: base.to_owned(),
                    instructions: Vec::new(),
                });
            }
            Some("ARG") if stages.is_empty() => {
                if let Some((k, v)) = words.get(1).and_then(|a| a.split_once('=')) {
                    args.push((k.to_owned(), v.to_owned()));
                }
            }
            _ => {
                if let Some(s) = stages.last_mut() {
                    s.instructions.push(ins);
                }
            }
        }
    }
    (args, stages)
}

/// The stage `name` and the stages it is built on, nearest first.
fn chain<'a>(stages: &'a [Stage], name: &str) -> Vec<&'a Stage> {
    let mut out = Vec::new();
    let mut next = stages.iter().find(|s| s.name == name);
    while let Some(s) = next {
        if out.iter().any(|o: &&Stage| o.name == s.name) {
            break;
        }
        out.push(s);
        next = stages
            .iter()
            .find(|p| !p.name.is_empty() && p.name == s.base);
    }
    out
}

fn runs_cargo_build(ins: &str) -> bool {
    let w: Vec<&str> = ins.split_whitespace().collect();
    w.first().is_some_and(|i| i.eq_ignore_ascii_case("RUN"))
        && w.windows(2).any(|p| p == ["cargo", "build"])
}

fn str_list(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn image_tag(binary: &str) -> String {
    format!("${{_REGION}}-docker.pkg.dev/${{PROJECT_ID}}/${{_REPOSITORY}}/{binary}:${{_TAG}}")
}

/// Everything wrong with the two files for the binaries in `deployed` (empty: all is well).
fn check_builds(
    dockerfile: &str,
    cloudbuild: &str,
    toolchain: &str,
    deployed: &[String],
) -> Vec<String> {
    let mut p = Vec::new();
    let (args, stages) = parse_dockerfile(dockerfile);

    // The toolchain is the one rust-toolchain.toml pins.
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_default();
    let rust = args
        .iter()
        .find(|(k, _)| k == "RUST_VERSION")
        .map(|(_, v)| v.as_str());
    if rust != Some(channel) {
        p.push(format!(
            "Dockerfile: RUST_VERSION is {rust:?}, rust-toolchain.toml pins {channel:?}"
        ));
    }

    // One cargo build, in the build stage: release, locked, every binary, with cached dependencies.
    let builds: Vec<(&str, &str)> = stages
        .iter()
        .flat_map(|s| {
            s.instructions
                .iter()
                .filter(|i| runs_cargo_build(i))
                .map(|i| (s.name.as_str(), i.as_str()))
        })
        .collect();
    if builds.len() != 1 {
        p.push(format!(
            "Dockerfile: {} `cargo build` steps (in stages {:?}), expected exactly one, in stage {BUILD_STAGE}",
            builds.len(),
            builds.iter().map(|(s, _)| *s).collect::<Vec<_>>()
        ));
    }
    if let Some((stage, cmd)) = builds.first() {
        if *stage != BUILD_STAGE {
            p.push(format!(
                "Dockerfile: cargo build runs in stage {stage:?}, not {BUILD_STAGE:?}"
            ));
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let cargo = words
            .windows(2)
            .position(|w| w == ["cargo", "build"])
            .unwrap_or(0);
        // The cargo command's own arguments: up to the next `&&` / `;`.
        let cargo_args: Vec<&str> = words[cargo..]
            .iter()
            .take_while(|w| !matches!(**w, "&&" | ";" | "||"))
            .copied()
            .collect();
        for flag in ["--release", "--locked"] {
            if !cargo_args.contains(&flag) {
                p.push(format!("Dockerfile: the cargo build is not {flag}"));
            }
        }
        let pairs: BTreeSet<(&str, &str)> = cargo_args.windows(2).map(|w| (w[0], w[1])).collect();
        for bin in deployed {
            for flag in ["-p", "--bin"] {
                if !pairs.contains(&(flag, bin.as_str())) {
                    p.push(format!("Dockerfile: the cargo build lacks `{flag} {bin}`"));
                }
            }
            if !cmd.contains(&format!("target/release/{bin}")) {
                p.push(format!(
                    "Dockerfile: the build stage does not copy target/release/{bin} out to {OUT_DIR}"
                ));
            }
        }
        let mounts: Vec<&str> = words
            .iter()
            .filter(|w| w.starts_with("--mount=") && w.contains("type=cache"))
            .copied()
            .collect();
        // Either BuildKit cache mounts (cargo's registry and the target directory) or cargo chef.
        let registry = mounts
            .iter()
            .any(|m| m.contains("target=/usr/local/cargo/registry"));
        let target_dir = mounts
            .iter()
            .any(|m| m.contains("/target,") || m.ends_with("/target"));
        let chef = dockerfile.contains("cargo chef cook");
        if !((registry && target_dir) || chef) {
            p.push(
                "Dockerfile: dependencies are not cached (cache mounts for cargo's registry and target directory, or cargo chef)"
                    .to_owned(),
            );
        }
    }

    // A runtime target per binary: distroless, non-root, holding the binary from the build stage.
    for bin in deployed {
        let c = chain(&stages, bin);
        let Some(root) = c.last() else {
            p.push(format!(
                "Dockerfile: no stage `AS {bin}` (docker build --target {bin})"
            ));
            continue;
        };
        if c.iter().any(|s| s.name == BUILD_STAGE)
            || c.iter()
                .any(|s| s.instructions.iter().any(|i| runs_cargo_build(i)))
        {
            p.push(format!(
                "Dockerfile: target {bin} compiles (it must only copy from {BUILD_STAGE})"
            ));
        }
        if !(root.base.starts_with("gcr.io/distroless/") && root.base.ends_with(":nonroot")) {
            p.push(format!(
                "Dockerfile: target {bin} is built on {:?}, not a distroless :nonroot image",
                root.base
            ));
        }
        let all: Vec<&str> = c
            .iter()
            .flat_map(|s| s.instructions.iter().map(String::as_str))
            .collect();
        let copy = format!("COPY --from={BUILD_STAGE} {OUT_DIR}/{bin} {APP}");
        if !all
            .iter()
            .any(|i| i.split_whitespace().collect::<Vec<_>>().join(" ") == copy)
        {
            p.push(format!("Dockerfile: target {bin} does not `{copy}`"));
        }
        for want in [
            "USER nonroot:nonroot",
            "ENV PORT=8080",
            "ENTRYPOINT [\"/usr/local/bin/app\"]",
        ] {
            if !all.contains(&want) {
                p.push(format!("Dockerfile: target {bin} lacks `{want}`"));
            }
        }
    }

    // Cloud Build: one step builds the build stage, every image step waits for it and reuses it.
    let cb: Json = match serde_yaml::from_str(cloudbuild) {
        Ok(v) => v,
        Err(e) => {
            p.push(format!("cloudbuild.yaml does not parse: {e}"));
            return p;
        }
    };
    let steps = cb
        .get("steps")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let pushed = str_list(cb.get("images"));
    let docker_builds: Vec<(String, Vec<String>, Vec<String>)> = steps
        .iter()
        .filter_map(|st| {
            let args = str_list(st.get("args"));
            let id = st.get("id").and_then(Json::as_str).unwrap_or_default().to_owned();
            let image = st.get("name").and_then(Json::as_str).unwrap_or_default();
            let cargo = image.contains("rust") || args.iter().any(|a| a.contains("cargo"));
            if cargo {
                p.push(format!("cloudbuild.yaml: step {id:?} runs cargo itself (only the Dockerfile's {BUILD_STAGE} stage compiles)"));
            }
            (args.first().map(String::as_str) == Some("build"))
                .then(|| (id, args, str_list(st.get("waitFor"))))
        })
        .collect();
    let target = |args: &[String]| {
        args.iter()
            .find_map(|a| a.strip_prefix("--target="))
            .map(str::to_owned)
    };
    let compile: Vec<&(String, Vec<String>, Vec<String>)> = docker_builds
        .iter()
        .filter(|(_, a, _)| target(a).as_deref() == Some(BUILD_STAGE))
        .collect();
    if compile.len() != 1 {
        p.push(format!(
            "cloudbuild.yaml: {} steps build --target={BUILD_STAGE}, expected exactly one",
            compile.len()
        ));
    }
    // What decides whether a step can take the build stage from the cache: all but --target and --tag.
    let shared = |args: &[String]| -> Vec<String> {
        args.iter()
            .filter(|a| {
                !a.starts_with("--target=") && !a.starts_with("--tag=") && !a.starts_with("-t")
            })
            .cloned()
            .collect()
    };
    if let Some((build_id, build_args, _)) = compile.first() {
        for (id, args, wait) in &docker_builds {
            if id == build_id {
                continue;
            }
            let Some(t) = target(args) else {
                p.push(format!(
                    "cloudbuild.yaml: step {id:?} builds no --target (the Dockerfile's last stage)"
                ));
                continue;
            };
            if chain(&stages, &t).iter().any(|s| s.name == BUILD_STAGE) {
                p.push(format!(
                    "cloudbuild.yaml: step {id:?} builds {t}, which is the build stage again"
                ));
            }
            if !wait.contains(build_id) {
                p.push(format!(
                    "cloudbuild.yaml: step {id:?} does not wait for {build_id:?} (waitFor {wait:?}): it would compile again, in parallel"
                ));
            }
            if shared(args) != shared(build_args) {
                p.push(format!(
                    "cloudbuild.yaml: step {id:?} builds with {:?}, step {build_id:?} with {:?}: the build stage would not come from the cache",
                    shared(args),
                    shared(build_args)
                ));
            }
            if args
                .iter()
                .any(|a| a == "--no-cache" || a.starts_with("--no-cache="))
            {
                p.push(format!("cloudbuild.yaml: step {id:?} builds --no-cache"));
            }
        }
        if !build_args.iter().any(|a| a == "--file=docker/Dockerfile") {
            p.push(format!(
                "cloudbuild.yaml: step {build_id:?} does not build docker/Dockerfile"
            ));
        }
    }
    for bin in deployed {
        let tag = image_tag(bin);
        let n = docker_builds
            .iter()
            .filter(|(_, a, _)| {
                target(a).as_deref() == Some(bin.as_str()) && a.contains(&format!("--tag={tag}"))
            })
            .count();
        if n != 1 {
            p.push(format!(
                "cloudbuild.yaml: {n} steps build --target={bin} --tag={tag}, expected one"
            ));
        }
        if !pushed.contains(&tag) {
            p.push(format!(
                "cloudbuild.yaml: {tag} is not among the images pushed"
            ));
        }
    }
    p
}

struct Files {
    dockerfile: String,
    cloudbuild: String,
    toolchain: String,
}

fn files() -> Files {
    Files {
        dockerfile: read("docker/Dockerfile"),
        cloudbuild: read("cloudbuild.yaml"),
        toolchain: read("rust-toolchain.toml"),
    }
}

fn problems(f: &Files) -> Vec<String> {
    check_builds(&f.dockerfile, &f.cloudbuild, &f.toolchain, &deployed())
}

/// `text` with `from` replaced, which must occur exactly once: a mutation that changes nothing (or a comment)
/// proves nothing.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}

/// `text` without the YAML list item that starts at `first_line`, up to the next blank line.
fn without_item(text: &str, first_line: &str) -> String {
    let start = text
        .find(first_line)
        .unwrap_or_else(|| panic!("{first_line:?} not found"));
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |e| start + e + 2);
    format!("{}{}", &text[..start], &text[end..])
}

fn caught(f: &Files, needle: &str) {
    let p = problems(f);
    assert!(
        p.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {p:#?}"
    );
    println!("caught: {needle}");
}

#[test]
fn the_real_builds_match_terraform() {
    let deployed = deployed();
    // Not vacuous: terraform deploys the five services.
    for bin in [
        "segcast-scheduler",
        "segcast-delivery",
        "segcast-log-sink",
        "segcast-click-redirect",
        "segcast-console",
    ] {
        assert!(deployed.iter().any(|d| d == bin), "{deployed:?}");
    }
    let p = problems(&files());
    assert!(p.is_empty(), "docker/Dockerfile, cloudbuild.yaml:\n{p:#?}");
}

#[test]
fn a_removed_image_step_is_caught() {
    let mut f = files();
    f.cloudbuild = without_item(&f.cloudbuild, "  - id: delivery\n");
    caught(&f, "0 steps build --target=segcast-delivery");
}

#[test]
fn an_image_not_pushed_or_mistagged_is_caught() {
    let mut f = files();
    let tag = image_tag("segcast-log-sink");
    f.cloudbuild = replaced(&f.cloudbuild, &format!("  - {tag}\n"), "");
    caught(
        &f,
        "segcast-log-sink:${_TAG} is not among the images pushed",
    );
    let mut f = files();
    f.cloudbuild = replaced(
        &f.cloudbuild,
        "/segcast-console:${_TAG}\n      - .",
        "/segcast-console:latest\n      - .",
    );
    caught(&f, "0 steps build --target=segcast-console");
}

#[test]
fn compiling_twice_is_caught() {
    // A second step building the build stage.
    let mut f = files();
    f.cloudbuild = replaced(
        &f.cloudbuild,
        "  - id: build\n",
        "  - id: build-again\n    name: gcr.io/cloud-builders/docker\n    args: [build, --file=docker/Dockerfile, --target=build, .]\n\n  - id: build\n",
    );
    caught(&f, "2 steps build --target=build");
    // An image step that does not wait for the build step compiles in parallel with it.
    let mut f = files();
    f.cloudbuild = replaced(
        &f.cloudbuild,
        "  - id: scheduler\n    name: gcr.io/cloud-builders/docker\n    waitFor: [\"build\"]",
        "  - id: scheduler\n    name: gcr.io/cloud-builders/docker\n    waitFor: [\"-\"]",
    );
    caught(&f, "step \"scheduler\" does not wait for \"build\"");
    // An image step whose build arguments differ misses the cache.
    let mut f = files();
    f.cloudbuild = replaced(
        &f.cloudbuild,
        "      - --target=segcast-delivery\n",
        "      - --target=segcast-delivery\n      - --build-arg=RUST_VERSION=1.94.0\n",
    );
    caught(&f, "the build stage would not come from the cache");
    // A runtime stage that compiles its own binary.
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "FROM runtime AS segcast-console\n",
        "FROM build AS segcast-console\nRUN cargo build --release --locked -p segcast-console\n",
    );
    caught(&f, "2 `cargo build` steps");
    caught(&f, "target segcast-console compiles");
}

#[test]
fn a_build_without_locked_or_release_is_caught() {
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "    cargo build --release --locked \\\n",
        "    cargo build --release \\\n",
    );
    caught(&f, "the cargo build is not --locked");
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "    cargo build --release --locked \\\n",
        "    cargo build --locked \\\n",
    );
    caught(&f, "the cargo build is not --release");
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "-p segcast-log-sink --bin segcast-log-sink",
        "",
    );
    caught(&f, "the cargo build lacks `-p segcast-log-sink`");
    let mut f = files();
    f.toolchain = replaced(&f.toolchain, "channel = \"", "channel = \"9");
    caught(&f, "rust-toolchain.toml pins");
}

#[test]
fn a_missing_or_rootful_runtime_target_is_caught() {
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "FROM runtime AS segcast-click-redirect\nCOPY --from=build /out/segcast-click-redirect /usr/local/bin/app\n",
        "",
    );
    caught(&f, "no stage `AS segcast-click-redirect`");
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "cc-debian13:nonroot AS runtime",
        "cc-debian13 AS runtime",
    );
    caught(&f, "not a distroless :nonroot image");
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "COPY --from=build /out/segcast-delivery /usr/local/bin/app",
        "COPY --from=build /out/segcast-scheduler /usr/local/bin/app",
    );
    caught(
        &f,
        "target segcast-delivery does not `COPY --from=build /out/segcast-delivery",
    );
}

#[test]
fn uncached_dependencies_are_caught() {
    let mut f = files();
    f.dockerfile = replaced(
        &f.dockerfile,
        "--mount=type=cache,target=/src/target,sharing=locked",
        "",
    );
    caught(&f, "dependencies are not cached");
}
