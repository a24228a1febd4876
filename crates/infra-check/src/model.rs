//! The terraform configuration as data: every resource instance with its arguments evaluated.
//!
//! terraform itself cannot run here (no provider downloads), so this is a small evaluator over `hcl-rs`: it
//! reads the root module and the modules it calls, takes variables from their defaults overridden by
//! `terraform.tfvars.example`, evaluates locals, `count`, `for_each`, `dynamic` blocks and module calls, and
//! resolves references between resources by repeating the evaluation until nothing new resolves. Attributes
//! that only exist after `apply` (an id, an email, a URL) are given stand-ins with the same shape, built from
//! the resource's own arguments (`<account_id>@<project>.iam.gserviceaccount.com`, `projects/<p>/topics/<n>`,
//! ...). An argument that still cannot be evaluated is kept as `{"$unknown": "<expression>"}`.

use anyhow::{Context as _, bail};
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Map, Structure, Value};
use serde_json::Value as Json;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stand-in project number (the real one is only known to GCP).
pub const PROJECT_NUMBER: &str = "123456789012";

/// The terraform sources: `.tf` files by path relative to the terraform directory, and the variable values.
/// Tests change a copy (see [`Sources::replace`]) and check the result.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The terraform directory (for `file()` and the repository's other files).
    pub dir: PathBuf,
    pub files: BTreeMap<String, String>,
    /// `terraform.tfvars.example`: the values the check evaluates with.
    pub tfvars: String,
}

impl Sources {
    /// Reads `dir/**/*.tf` and `dir/terraform.tfvars.example`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in
                std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?
            {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if path.is_dir() {
                    if !name.starts_with('.') {
                        stack.push(path);
                    }
                } else if name.ends_with(".tf") {
                    let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                    files.insert(rel, std::fs::read_to_string(&path)?);
                }
            }
        }
        let tfvars = std::fs::read_to_string(dir.join("terraform.tfvars.example"))
            .context("reading terraform.tfvars.example")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            tfvars,
        })
    }

    /// Replaces the one occurrence of `from` in `file` (panics when it is not there exactly once: a test
    /// mutation that silently did nothing would prove nothing).
    pub fn replace(&mut self, file: &str, from: &str, to: &str) -> &mut Self {
        let text = self
            .files
            .get_mut(file)
            .unwrap_or_else(|| panic!("no file {file}"));
        assert_eq!(
            text.matches(from).count(),
            1,
            "{file} must contain {from:?} exactly once"
        );
        *text = text.replacen(from, to, 1);
        self
    }
}

/// One resource (or data source) instance.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `""` for the root module, else e.g. `module.delivery_topics` or `module.console[0]`.
    pub module: String,
    /// `resource` or `data`.
    pub mode: String,
    pub kind: String,
    pub name: String,
    /// The `count` index or `for_each` key.
    pub key: Option<String>,
    /// Arguments and nested blocks (blocks are arrays of objects under the block's type), plus stand-ins
    /// for the computed attributes.
    pub body: Json,
}

impl Resource {
    pub fn address(&self) -> String {
        let mut a = String::new();
        if !self.module.is_empty() {
            a.push_str(&self.module);
            a.push('.');
        }
        if self.mode == "data" {
            a.push_str("data.");
        }
        a.push_str(&self.kind);
        a.push('.');
        a.push_str(&self.name);
        match &self.key {
            Some(k) if k.parse::<usize>().is_ok() => a.push_str(&format!("[{k}]")),
            Some(k) => a.push_str(&format!("[{k:?}]")),
            None => {}
        }
        a
    }

    /// A string argument or computed attribute (`None` when missing or unknown).
    pub fn str(&self, attr: &str) -> Option<&str> {
        self.body.get(attr).and_then(Json::as_str)
    }

    /// The value at a JSON pointer into the body, e.g. `/push_config/0/oidc_token/0/audience`.
    pub fn at(&self, pointer: &str) -> Option<&Json> {
        self.body.pointer(pointer).filter(|v| !is_unknown(v))
    }

    pub fn at_str(&self, pointer: &str) -> Option<&str> {
        self.at(pointer).and_then(Json::as_str)
    }
}

/// Whether a value is an unevaluated expression.
pub fn is_unknown(v: &Json) -> bool {
    v.get("$unknown").is_some()
}

/// The evaluated configuration.
#[derive(Debug, Clone)]
pub struct Model {
    pub resources: Vec<Resource>,
    /// The root module's variables, as evaluated (defaults overridden by the tfvars).
    pub root_vars: Json,
    /// What could not be evaluated at all (unknown `count`/`for_each`, unparsable files).
    pub errors: Vec<String>,
}

impl Model {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::from_sources(&Sources::load(dir)?)
    }

    pub fn from_sources(src: &Sources) -> anyhow::Result<Self> {
        let mut modules = BTreeMap::new();
        for (path, text) in &src.files {
            let dir = match path.rsplit_once('/') {
                Some((d, _)) => d.to_owned(),
                None => ".".to_owned(),
            };
            let body: Body = hcl::from_str(text).with_context(|| format!("parsing {path}"))?;
            modules
                .entry(dir)
                .or_insert_with(Vec::new)
                .extend(body.into_blocks());
        }
        if !modules.contains_key(".") {
            bail!("no .tf files in {}", src.dir.display());
        }
        let tfvars: Body =
            hcl::from_str(&src.tfvars).context("parsing terraform.tfvars.example")?;
        let base = base_context();
        let mut inputs = Map::new();
        for attr in tfvars.attributes() {
            let v = attr
                .expr
                .evaluate(&base)
                .map_err(|e| anyhow::anyhow!("terraform.tfvars.example: {}: {e}", attr.key))?;
            inputs.insert(attr.key.to_string(), v);
        }
        let mut ev = Evaluator {
            modules,
            root: src.dir.clone(),
            plan: false,
        };
        let (known, out) = ev.run(&inputs);
        // Again as `terraform plan` sees it, with every computed attribute unknown: `count` and `for_each`
        // keys must not depend on them (terraform refuses to plan otherwise).
        ev.plan = true;
        let (_, planned) = ev.run(&inputs);
        let mut errors = out.errors;
        errors.extend(
            planned
                .errors
                .into_iter()
                .filter(|e| e.contains(AFTER_APPLY))
                .map(|e| format!("terraform plan would fail: {e}")),
        );
        Ok(Model {
            resources: out.resources,
            root_vars: to_json(&known.vars.get("").cloned().unwrap_or(Value::Null)),
            errors,
        })
    }

    pub fn all<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.kind == kind && r.mode == "resource")
    }

    /// The resource of `kind` whose `attr` is `value`.
    pub fn find<'a>(&'a self, kind: &'a str, attr: &str, value: &str) -> Option<&'a Resource> {
        self.all(kind).find(|r| r.str(attr) == Some(value))
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Known {
    /// Per module instance path: `kind` -> `name` -> value (object, list for count, map for for_each).
    resources: BTreeMap<String, Map<String, Value>>,
    data: BTreeMap<String, Map<String, Value>>,
    /// Per module instance path: module name -> outputs (list of outputs for count).
    modules: BTreeMap<String, Map<String, Value>>,
    vars: BTreeMap<String, Value>,
}

#[derive(Default)]
struct Pass {
    resources: Vec<Resource>,
    errors: Vec<String>,
}

struct Evaluator {
    modules: BTreeMap<String, Vec<Block>>,
    root: PathBuf,
    /// Computed attributes are unknown ([`AFTER_APPLY`]), as when planning a new deployment.
    plan: bool,
}

/// The value of an attribute only known after apply, in plan mode.
pub const AFTER_APPLY: &str = "(known after apply)";

thread_local! {
    /// The terraform directory, for `file()` (hcl-rs functions are plain `fn`s).
    static ROOT: RefCell<PathBuf> = const { RefCell::new(PathBuf::new()) };
}

fn label(b: &Block, i: usize) -> String {
    b.labels
        .get(i)
        .map(|l| l.as_str().to_owned())
        .unwrap_or_default()
}

fn raw(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap_or_else(|_| format!("{expr:?}"))
}

fn to_json(v: &Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn normalize_dir(parent: &str, source: &str) -> String {
    let mut parts: Vec<&str> = if parent == "." {
        vec![]
    } else {
        parent.split('/').collect()
    };
    for p in source.split('/') {
        match p {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

impl Evaluator {
    /// Resolves references by re-evaluating with what the previous pass learnt, until it stops changing.
    fn run(&self, inputs: &Map<String, Value>) -> (Known, Pass) {
        let mut known = Known::default();
        let mut out = Pass::default();
        for _ in 0..12 {
            out = Pass::default();
            let mut next = Known::default();
            self.module(".", "", inputs, &known, &mut next, &mut out);
            let done = next == known;
            known = next;
            if done {
                break;
            }
        }
        (known, out)
    }

    /// Evaluates one module instance at `path` (`""` = root) in directory `dir` with the given inputs.
    /// Returns its outputs.
    fn module(
        &self,
        dir: &str,
        path: &str,
        inputs: &Map<String, Value>,
        known: &Known,
        next: &mut Known,
        out: &mut Pass,
    ) -> Map<String, Value> {
        ROOT.with(|r| *r.borrow_mut() = self.root.clone());
        let blocks = self.modules.get(dir).cloned().unwrap_or_default();
        // Variables: defaults, overridden by inputs.
        let base = base_context();
        let mut vars = Map::new();
        for b in blocks
            .iter()
            .filter(|b| b.identifier.as_str() == "variable")
        {
            let name = label(b, 0);
            let default = b
                .body
                .attributes()
                .find(|a| a.key.as_str() == "default")
                .and_then(|a| a.expr.evaluate(&base).ok());
            let v = inputs
                .get(&name)
                .cloned()
                .or(default)
                .unwrap_or(Value::Null);
            vars.insert(name, v);
        }
        next.vars
            .insert(path.to_owned(), Value::Object(vars.clone()));

        let mut ctx = base.clone();
        ctx.declare_var("var", Value::Object(vars));
        ctx.declare_var("path", obj(&[("module", Value::from(dir))]));
        let empty = Map::new();
        let resources = known.resources.get(path).unwrap_or(&empty);
        for (kind, names) in resources {
            ctx.declare_var(kind.as_str(), names.clone());
        }
        ctx.declare_var(
            "data",
            Value::Object(
                known
                    .data
                    .get(path)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            ),
        );
        ctx.declare_var(
            "module",
            Value::Object(known.modules.get(path).cloned().unwrap_or_default()),
        );

        // Locals: repeat until no more resolve (they may refer to each other).
        let local_attrs: Vec<_> = blocks
            .iter()
            .filter(|b| b.identifier.as_str() == "locals")
            .flat_map(|b| b.body.attributes().cloned().collect::<Vec<_>>())
            .collect();
        let mut locals = Map::new();
        loop {
            let mut c = ctx.clone();
            c.declare_var("local", Value::Object(locals.clone()));
            let mut progressed = false;
            for a in &local_attrs {
                if locals.contains_key(a.key.as_str()) {
                    continue;
                }
                if let Ok(v) = a.expr.evaluate(&c) {
                    locals.insert(a.key.to_string(), v);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        ctx.declare_var("local", Value::Object(locals));

        let mut my_resources: Map<String, Value> = Map::new();
        let mut my_data: Map<String, Value> = Map::new();
        let mut my_modules: Map<String, Value> = Map::new();
        for b in &blocks {
            match b.identifier.as_str() {
                mode @ ("resource" | "data") => {
                    let (kind, name) = (label(b, 0), label(b, 1));
                    let table = if mode == "data" {
                        &mut my_data
                    } else {
                        &mut my_resources
                    };
                    let v = self.resource(mode, &kind, &name, b, &mut ctx, path, out);
                    let entry = table
                        .entry(kind)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(m) = entry {
                        m.insert(name, v);
                    }
                }
                "module" => {
                    let name = label(b, 0);
                    let v = self.module_call(dir, path, &name, b, &mut ctx, known, next, out);
                    my_modules.insert(name, v);
                }
                _ => {}
            }
        }
        next.resources.insert(path.to_owned(), my_resources);
        next.data.insert(path.to_owned(), my_data);
        next.modules.insert(path.to_owned(), my_modules);

        // Outputs, in a context that knows this pass's values too.
        let mut outputs = Map::new();
        for b in blocks.iter().filter(|b| b.identifier.as_str() == "output") {
            if let Some(a) = b.body.attributes().find(|a| a.key.as_str() == "value")
                && let Ok(v) = a.expr.evaluate(&ctx)
            {
                outputs.insert(label(b, 0), v);
            }
        }
        outputs
    }

    #[allow(clippy::too_many_arguments)]
    fn module_call(
        &self,
        dir: &str,
        path: &str,
        name: &str,
        b: &Block,
        ctx: &mut Context<'static>,
        known: &Known,
        next: &mut Known,
        out: &mut Pass,
    ) -> Value {
        let source = b
            .body
            .attributes()
            .find(|a| a.key.as_str() == "source")
            .and_then(|a| a.expr.evaluate(ctx).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let child_dir = normalize_dir(dir, &source);
        let prefix = if path.is_empty() {
            format!("module.{name}")
        } else {
            format!("{path}.module.{name}")
        };
        let instances = match expand(b, ctx) {
            Ok(i) => i,
            Err(e) => {
                out.errors.push(format!("{prefix}: {e}"));
                return Value::Null;
            }
        };
        let mut results = Vec::new();
        for inst in &instances {
            inst.declare(ctx);
            let c = &*ctx;
            let mut inputs = Map::new();
            for a in b.body.attributes() {
                if matches!(
                    a.key.as_str(),
                    "source" | "count" | "for_each" | "depends_on" | "providers"
                ) {
                    continue;
                }
                if let Ok(v) = a.expr.evaluate(c) {
                    inputs.insert(a.key.to_string(), v);
                }
            }
            let child_path = match &inst.key {
                Key::None => prefix.clone(),
                Key::Index(i) => format!("{prefix}[{i}]"),
                Key::Name(k, _) => format!("{prefix}[{k:?}]"),
            };
            let outputs = self.module(&child_dir, &child_path, &inputs, known, next, out);
            results.push((inst.key.clone(), Value::Object(outputs)));
        }
        Instance::clear(ctx);
        collect(results)
    }

    #[allow(clippy::too_many_arguments)]
    fn resource(
        &self,
        mode: &str,
        kind: &str,
        name: &str,
        b: &Block,
        ctx: &mut Context<'static>,
        path: &str,
        out: &mut Pass,
    ) -> Value {
        let instances = match expand(b, ctx) {
            Ok(i) => i,
            Err(e) => {
                let dot = if path.is_empty() { "" } else { "." };
                out.errors.push(format!("{path}{dot}{kind}.{name}: {e}"));
                return Value::Null;
            }
        };
        let mut results = Vec::new();
        for inst in &instances {
            inst.declare(ctx);
            let mut body = eval_body(&b.body, ctx);
            let given: Vec<String> = body.keys().cloned().collect();
            computed(kind, mode, &mut body);
            if self.plan && mode == "resource" {
                for (k, v) in body.iter_mut() {
                    if !given.contains(k) {
                        *v = Value::from(AFTER_APPLY);
                    }
                }
            }
            out.resources.push(Resource {
                module: path.to_owned(),
                mode: mode.to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                key: match &inst.key {
                    Key::None => None,
                    Key::Index(i) => Some(i.to_string()),
                    Key::Name(k, _) => Some(k.clone()),
                },
                body: to_json(&Value::Object(body.clone())),
            });
            results.push((inst.key.clone(), Value::Object(body)));
        }
        Instance::clear(ctx);
        collect(results)
    }
}

#[derive(Clone)]
enum Key {
    None,
    Index(usize),
    Name(String, Value),
}

struct Instance {
    key: Key,
}

impl Instance {
    /// Makes `count.index` / `each.key` / `each.value` this instance's (the context is reused for every
    /// instance rather than copied: it holds the whole configuration).
    fn declare(&self, c: &mut Context<'_>) {
        match &self.key {
            Key::None => {}
            Key::Index(i) => c.declare_var("count", obj(&[("index", Value::from(*i as u64))])),
            Key::Name(k, v) => c.declare_var(
                "each",
                obj(&[("key", Value::from(k.as_str())), ("value", v.clone())]),
            ),
        }
    }

    /// After the last instance: `count` and `each` mean nothing outside a counted block.
    fn clear(c: &mut Context<'_>) {
        c.declare_var("count", Value::Null);
        c.declare_var("each", Value::Null);
    }
}

/// The instances `count` / `for_each` make.
fn expand(b: &Block, ctx: &Context) -> Result<Vec<Instance>, String> {
    for a in b.body.attributes() {
        match a.key.as_str() {
            "count" => {
                let v = a
                    .expr
                    .evaluate(ctx)
                    .map_err(|e| format!("cannot evaluate count = {}: {e}", raw(&a.expr)))?;
                let n = v
                    .as_u64()
                    .ok_or_else(|| format!("count is not a number: {v}"))?;
                return Ok((0..n as usize)
                    .map(|i| Instance { key: Key::Index(i) })
                    .collect());
            }
            "for_each" => {
                let v = a
                    .expr
                    .evaluate(ctx)
                    .map_err(|e| format!("cannot evaluate for_each = {}: {e}", raw(&a.expr)))?;
                let items = for_each_items(&v)?;
                if let Some((k, _)) = items.iter().find(|(k, _)| k.contains(AFTER_APPLY)) {
                    return Err(format!(
                        "the for_each keys of {} are only known after apply (key {k:?}): use static keys",
                        raw(&a.expr)
                    ));
                }
                return Ok(items
                    .into_iter()
                    .map(|(k, v)| Instance {
                        key: Key::Name(k, v),
                    })
                    .collect());
            }
            _ => {}
        }
    }
    Ok(vec![Instance { key: Key::None }])
}

fn for_each_items(v: &Value) -> Result<Vec<(String, Value)>, String> {
    match v {
        Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok((s.clone(), x.clone())),
                other => Err(format!("for_each over a set of non-strings: {other}")),
            })
            .collect(),
        other => Err(format!("for_each is not a map or set: {other}")),
    }
}

/// A resource's value as seen from other resources: one object, a list (count) or a map (for_each).
fn collect(results: Vec<(Key, Value)>) -> Value {
    match results.first().map(|(k, _)| k) {
        Some(Key::None) => results
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or_default(),
        Some(Key::Name(..)) => Value::Object(
            results
                .into_iter()
                .map(|(k, v)| match k {
                    Key::Name(k, _) => (k, v),
                    _ => unreachable!(),
                })
                .collect(),
        ),
        // count, including count = 0 (an empty list). A for_each over nothing is an empty list as well,
        // which splat and `for` expressions treat alike.
        _ => Value::Array(results.into_iter().map(|(_, v)| v).collect()),
    }
}

/// Evaluates a block body: attributes to values (unknown ones to `{"$unknown": expr}`), nested blocks to
/// arrays of objects, `dynamic` blocks expanded.
fn eval_body(body: &Body, ctx: &Context) -> Map<String, Value> {
    let mut m = Map::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let v = a
                    .expr
                    .evaluate(ctx)
                    .unwrap_or_else(|_| obj(&[("$unknown", Value::from(raw(&a.expr)))]));
                m.insert(a.key.to_string(), v);
            }
            Structure::Block(b) if b.identifier.as_str() == "dynamic" => {
                let name = label(b, 0);
                let for_each = b
                    .body
                    .attributes()
                    .find(|a| a.key.as_str() == "for_each")
                    .map(|a| a.expr.evaluate(ctx));
                let content = b.body.blocks().find(|c| c.identifier.as_str() == "content");
                let list = m
                    .entry(name.clone())
                    .or_insert_with(|| Value::Array(vec![]));
                match (for_each, content) {
                    (Some(Ok(v)), Some(content)) => {
                        for (k, v) in for_each_items(&v).unwrap_or_default() {
                            let mut c = ctx.clone();
                            c.declare_var(
                                name.as_str(),
                                obj(&[("key", Value::from(k)), ("value", v)]),
                            );
                            if let Value::Array(a) = list {
                                a.push(Value::Object(eval_body(&content.body, &c)));
                            }
                        }
                    }
                    _ => {
                        if let Value::Array(a) = list {
                            a.push(obj(&[("$unknown", Value::from(format!("dynamic {name}")))]));
                        }
                    }
                }
            }
            Structure::Block(b) => {
                let v = Value::Object(eval_body(&b.body, ctx));
                let list = m
                    .entry(b.identifier.to_string())
                    .or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(a) = list {
                    a.push(v);
                }
            }
        }
    }
    m
}

fn s(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(|v| v.as_str()).map(str::to_owned)
}

/// Stand-ins for attributes only known after apply, with the shapes GCP gives them.
fn computed(kind: &str, mode: &str, m: &mut Map<String, Value>) {
    let project = s(m, "project").unwrap_or_else(|| "PROJECT".into());
    let name = s(m, "name");
    let set = |m: &mut Map<String, Value>, k: &str, v: String| {
        m.entry(k.to_owned()).or_insert(Value::from(v));
    };
    match (mode, kind) {
        ("data", "google_project") => {
            set(m, "number", PROJECT_NUMBER.into());
        }
        (_, "google_service_account") => {
            if let Some(id) = s(m, "account_id") {
                let email = format!("{id}@{project}.iam.gserviceaccount.com");
                set(
                    m,
                    "name",
                    format!("projects/{project}/serviceAccounts/{email}"),
                );
                set(
                    m,
                    "id",
                    format!("projects/{project}/serviceAccounts/{email}"),
                );
                set(m, "email", email.clone());
                set(m, "member", format!("serviceAccount:{email}"));
            }
        }
        (_, "google_pubsub_topic") => {
            if let Some(n) = name {
                set(m, "id", format!("projects/{project}/topics/{n}"));
            }
        }
        (_, "google_pubsub_subscription") => {
            if let Some(n) = name {
                set(m, "id", format!("projects/{project}/subscriptions/{n}"));
            }
        }
        (_, "google_cloud_run_v2_service") => {
            if let (Some(n), Some(loc)) = (name, s(m, "location")) {
                set(
                    m,
                    "uri",
                    format!("https://{n}-{PROJECT_NUMBER}.{loc}.run.app"),
                );
                set(
                    m,
                    "id",
                    format!("projects/{project}/locations/{loc}/services/{n}"),
                );
            }
        }
        (_, "google_secret_manager_secret") => {
            if let Some(id) = s(m, "secret_id") {
                set(m, "name", format!("projects/{PROJECT_NUMBER}/secrets/{id}"));
                set(m, "id", format!("projects/{project}/secrets/{id}"));
            }
        }
        (_, "google_bigquery_dataset") => {
            if let Some(id) = s(m, "dataset_id") {
                set(m, "id", format!("projects/{project}/datasets/{id}"));
            }
        }
        (_, "google_project_iam_custom_role") => {
            if let Some(id) = s(m, "role_id") {
                set(m, "name", format!("projects/{project}/roles/{id}"));
            }
        }
        (_, "google_compute_backend_service") => {
            set(m, "generated_id", "4242424242".into());
        }
        (_, "google_compute_global_address") => {
            set(m, "address", "203.0.113.10".into());
        }
        _ => {}
    }
    if let Some(n) = s(m, "name") {
        set(m, "id", n);
    }
}

// --- functions (the terraform built-ins the configuration uses)

fn base_context() -> Context<'static> {
    let mut c = Context::new();
    let any = || ParamType::Any;
    let f = |func: hcl::eval::Func, n: usize| {
        let mut b = FuncDef::builder();
        for _ in 0..n {
            b = b.param(ParamType::Any);
        }
        b.build(func)
    };
    c.declare_func("tostring", f(tostring, 1));
    c.declare_func("toset", f(toset, 1));
    c.declare_func("tolist", f(toset, 1));
    c.declare_func("length", f(length, 1));
    c.declare_func("lookup", f(lookup, 3));
    c.declare_func("split", f(split, 2));
    c.declare_func("replace", f(replace, 3));
    c.declare_func("join", f(join, 2));
    c.declare_func("substr", f(substr, 3));
    c.declare_func("sha256", f(sha256, 1));
    c.declare_func("file", f(file, 1));
    c.declare_func("yamldecode", f(yamldecode, 1));
    c.declare_func("jsonencode", f(jsonencode, 1));
    c.declare_func("floor", f(floor, 1));
    c.declare_func("keys", f(keys, 1));
    c.declare_func("range", f(range, 1));
    c.declare_func(
        "merge",
        FuncDef::builder().variadic_param(any()).build(merge),
    );
    c.declare_func(
        "concat",
        FuncDef::builder().variadic_param(any()).build(concat),
    );
    c.declare_func("flatten", f(flatten, 1));
    c
}

fn string_of(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("not a string: {other}")),
    }
}

fn tostring(a: FuncArgs) -> Result<Value, String> {
    string_of(&a[0]).map(Value::from)
}

fn toset(a: FuncArgs) -> Result<Value, String> {
    match &a[0] {
        Value::Array(v) => {
            let mut out: Vec<Value> = Vec::new();
            for x in v {
                if !out.contains(x) {
                    out.push(x.clone());
                }
            }
            Ok(Value::Array(out))
        }
        other => Err(format!("toset of {other}")),
    }
}

fn length(a: FuncArgs) -> Result<Value, String> {
    match &a[0] {
        Value::Array(v) => Ok(Value::from(v.len() as u64)),
        Value::Object(m) => Ok(Value::from(m.len() as u64)),
        Value::String(s) => Ok(Value::from(s.chars().count() as u64)),
        other => Err(format!("length of {other}")),
    }
}

fn lookup(a: FuncArgs) -> Result<Value, String> {
    match &a[0] {
        Value::Object(m) => Ok(m.get(&string_of(&a[1])?).cloned().unwrap_or(a[2].clone())),
        other => Err(format!("lookup in {other}")),
    }
}

fn split(a: FuncArgs) -> Result<Value, String> {
    let (sep, s) = (string_of(&a[0])?, string_of(&a[1])?);
    Ok(Value::Array(
        s.split(sep.as_str()).map(Value::from).collect(),
    ))
}

fn replace(a: FuncArgs) -> Result<Value, String> {
    let (s, from, to) = (string_of(&a[0])?, string_of(&a[1])?, string_of(&a[2])?);
    if from.len() > 1 && from.starts_with('/') && from.ends_with('/') {
        return Err("regular-expression replace is not supported by the check".into());
    }
    Ok(Value::from(s.replace(&from, &to)))
}

fn join(a: FuncArgs) -> Result<Value, String> {
    let sep = string_of(&a[0])?;
    match &a[1] {
        Value::Array(v) => Ok(Value::from(
            v.iter()
                .map(string_of)
                .collect::<Result<Vec<_>, _>>()?
                .join(&sep),
        )),
        other => Err(format!("join of {other}")),
    }
}

fn substr(a: FuncArgs) -> Result<Value, String> {
    let s = string_of(&a[0])?;
    let off = a[1].as_u64().ok_or("substr offset")? as usize;
    let len = a[2].as_i64().ok_or("substr length")?;
    let chars = s.chars().skip(off);
    Ok(Value::from(if len < 0 {
        chars.collect::<String>()
    } else {
        chars.take(len as usize).collect::<String>()
    }))
}

fn sha256(a: FuncArgs) -> Result<Value, String> {
    use sha2::Digest;
    Ok(Value::from(hex::encode(sha2::Sha256::digest(
        string_of(&a[0])?.as_bytes(),
    ))))
}

fn file(a: FuncArgs) -> Result<Value, String> {
    let p = string_of(&a[0])?;
    let full = ROOT.with(|r| r.borrow().join(&p));
    std::fs::read_to_string(&full)
        .map(Value::from)
        .map_err(|e| format!("file({p}): {e}"))
}

fn yamldecode(a: FuncArgs) -> Result<Value, String> {
    let v: Json = serde_yaml::from_str(&string_of(&a[0])?).map_err(|e| e.to_string())?;
    hcl::to_value(v).map_err(|e| e.to_string())
}

fn jsonencode(a: FuncArgs) -> Result<Value, String> {
    serde_json::to_string(&to_json(&a[0]))
        .map(Value::from)
        .map_err(|e| e.to_string())
}

fn floor(a: FuncArgs) -> Result<Value, String> {
    let f = a[0].as_f64().ok_or("floor of a non-number")?;
    Ok(Value::from(f.floor() as i64))
}

fn keys(a: FuncArgs) -> Result<Value, String> {
    match &a[0] {
        Value::Object(m) => Ok(Value::Array(
            m.keys().map(|k| Value::from(k.as_str())).collect(),
        )),
        other => Err(format!("keys of {other}")),
    }
}

fn range(a: FuncArgs) -> Result<Value, String> {
    let n = a[0].as_u64().ok_or("range of a non-number")?;
    Ok(Value::Array((0..n).map(Value::from).collect()))
}

fn merge(a: FuncArgs) -> Result<Value, String> {
    let mut out = Map::new();
    for v in a.iter() {
        match v {
            Value::Object(m) => out.extend(m.clone()),
            Value::Null => {}
            other => return Err(format!("merge of {other}")),
        }
    }
    Ok(Value::Object(out))
}

fn concat(a: FuncArgs) -> Result<Value, String> {
    let mut out = Vec::new();
    for v in a.iter() {
        match v {
            Value::Array(x) => out.extend(x.iter().cloned()),
            other => return Err(format!("concat of {other}")),
        }
    }
    Ok(Value::Array(out))
}

fn flatten(a: FuncArgs) -> Result<Value, String> {
    fn go(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Array(x) => x.iter().for_each(|y| go(y, out)),
            other => out.push(other.clone()),
        }
    }
    let mut out = Vec::new();
    go(&a[0], &mut out);
    Ok(Value::Array(out))
}
