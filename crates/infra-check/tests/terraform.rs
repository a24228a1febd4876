//! terraform/ against the code: the real configuration passes, and each kind of drift is caught.

use segcast_infra_check::{Code, Model, Problem, Sources, check, repo_root};

fn sources() -> Sources {
    Sources::load(&repo_root().join("terraform")).expect("terraform/ loads")
}

fn problems(src: &Sources) -> Vec<Problem> {
    let model = Model::from_sources(src).expect("terraform/ parses");
    check(&model, &Code::from_crate(&repo_root()).expect("code facts"))
}

fn show(p: &[Problem]) -> String {
    p.iter().map(|p| format!("  - {p}\n")).collect()
}

/// The mutation is caught, by a problem whose message contains `needle`.
fn caught(src: &Sources, needle: &str) -> Vec<Problem> {
    let p = problems(src);
    match p.iter().find(|p| p.to_string().contains(needle)) {
        Some(found) => println!("caught: {found}"),
        None => panic!(
            "expected a problem mentioning {needle:?}, got:\n{}",
            show(&p)
        ),
    }
    p
}

#[test]
fn the_real_terraform_matches_the_code() {
    let p = problems(&sources());
    assert!(
        p.is_empty(),
        "terraform/ and the code disagree:\n{}",
        show(&p)
    );
}

/// The check is not vacuous: the model holds what the code needs, evaluated.
#[test]
fn the_model_is_evaluated_not_guessed() {
    let model = Model::from_sources(&sources()).unwrap();
    let subs: Vec<_> = model
        .all("google_pubsub_subscription")
        .filter_map(|s| s.str("name"))
        .collect();
    for i in 0..10 {
        assert!(
            subs.contains(&format!("segcast-delivery-{i}-push").as_str()),
            "{subs:?}"
        );
    }
    assert!(
        subs.contains(&"segcast-delivery-dead-letter-push"),
        "{subs:?}"
    );
    let delivery = model
        .find("google_cloud_run_v2_service", "name", "segcast-delivery")
        .expect("delivery service");
    let env = delivery
        .at("/template/0/containers/0/env")
        .unwrap()
        .to_string();
    assert!(env.contains("LINE_CHANNEL_1234567890_SECRET"), "{env}");
    assert!(
        env.contains("segcast-pubsub-push@my-project.iam.gserviceaccount.com"),
        "{env}"
    );
    assert!(model.all("google_bigquery_job").count() == 1);
    assert!(model.errors.is_empty(), "{:?}", model.errors);
}

#[test]
fn a_renamed_delivery_topic_is_caught() {
    let mut src = sources();
    src.replace(
        "modules/delivery_topics/main.tf",
        "name    = \"${var.topic_prefix}-${count.index}\"\n",
        "name    = \"${var.topic_prefix}-topic-${count.index}\"\n",
    );
    caught(
        &src,
        "delivery topic 0 of 10 (Settings::delivery_topic) is not created",
    );
}

#[test]
fn a_renamed_dead_letter_topic_is_caught() {
    let mut src = sources();
    src.replace(
        "modules/delivery_topics/main.tf",
        "name                       = \"${var.topic_prefix}-dead-letter\"",
        "name                       = \"${var.topic_prefix}-dlq\"",
    );
    caught(
        &src,
        "the dead-letter topic (Settings::dead_letter_topic) is not created",
    );
}

#[test]
fn a_missing_dead_letter_policy_is_caught() {
    let mut src = sources();
    src.replace(
        "modules/delivery_topics/main.tf",
        "  dead_letter_policy {\n    dead_letter_topic     = google_pubsub_topic.dead_letter.id\n    max_delivery_attempts = var.max_delivery_attempts\n  }\n",
        "",
    );
    caught(&src, "segcast-delivery-0-push");
    caught(&src, "push subscription without a dead_letter_policy");
}

#[test]
fn a_push_subscription_without_oidc_or_retry_policy_is_caught() {
    let mut src = sources();
    src.replace(
        "modules/delivery_topics/main.tf",
        "    oidc_token {\n      service_account_email = var.push_service_account_email\n      audience              = var.push_audience\n    }\n  }\n\n  # 503",
        "  }\n\n  # 503",
    );
    caught(&src, "push subscription without OIDC authentication");
    let mut src = sources();
    src.replace(
        "modules/delivery_topics/main.tf",
        "  retry_policy {\n    minimum_backoff = \"1s\"\n    maximum_backoff = \"60s\"\n  }\n",
        "",
    );
    caught(&src, "push subscription without a retry_policy");
}

#[test]
fn a_log_row_field_missing_from_the_table_is_schema_drift() {
    let src = sources();
    let model = Model::from_sources(&src).unwrap();
    let mut code = Code::from_crate(&repo_root()).unwrap();
    // DeliveryLogRow grows a field that the DDL (and so the BigQuery subscription) does not have.
    let mut extra = code.log_row[0].clone();
    extra.name = "campaign_name".into();
    code.log_row.push(extra);
    let p = check(&model, &code);
    assert!(
        p.iter().any(|p| p
            .to_string()
            .contains("schema drift between DeliveryLogRow and delivery_logs")
            && p.to_string().contains("campaign_name")),
        "{}",
        show(&p)
    );
    // And a field whose type changed (an integer written where the table has a string).
    let mut code = Code::from_crate(&repo_root()).unwrap();
    let f = code
        .log_row
        .iter_mut()
        .find(|f| f.name == "batch_id")
        .unwrap();
    f.accepts = vec!["INT64".into()];
    let p = check(&model, &code);
    assert!(
        p.iter().any(|p| p.to_string().contains("field `batch_id`")),
        "{}",
        show(&p)
    );
}

#[test]
fn a_column_dropped_from_the_ddl_is_schema_drift() {
    let model = Model::from_sources(&sources()).unwrap();
    let mut code = Code::from_crate(&repo_root()).unwrap();
    let ddl = &mut code
        .ddl
        .iter_mut()
        .find(|(f, _)| f == "ddl/delivery_logs.sql")
        .unwrap()
        .1;
    *ddl = ddl.replace("  line_request_id STRING,\n", "");
    let p = check(&model, &code);
    assert!(
        p.iter().any(|p| p.to_string().contains(
            "field `line_request_id` is written by the code but the table has no such column"
        )),
        "{}",
        show(&p)
    );
}

#[test]
fn a_bigquery_subscription_without_the_table_schema_is_caught() {
    let mut src = sources();
    src.replace(
        "pubsub.tf",
        "    table               = \"${var.project_id}.${google_bigquery_dataset.segcast.dataset_id}.delivery_logs\"\n    use_table_schema    = true",
        "    table               = \"${var.project_id}.${google_bigquery_dataset.segcast.dataset_id}.delivery_logs\"\n    use_table_schema    = false",
    );
    caught(&src, "must set use_table_schema = true");
}

#[test]
fn a_second_copy_of_the_ddl_is_caught() {
    let mut src = sources();
    src.replace(
        "bigquery.tf",
        "ddl_script = join(\";\\n\\n\", local.ddl_statements)",
        "ddl_script = join(\";\\n\\n\", concat(local.ddl_statements, [\"CREATE TABLE IF NOT EXISTS `my-project.segcast.delivery_logs_copy` (log_id STRING)\"]))",
    );
    caught(&src, "runs SQL that is not a sql/ddl file");
    let mut src = sources();
    src.replace(
        "bigquery.tf",
        "    \"delivery_logs\",\n    \"click_logs\",\n",
        "    \"click_logs\",\n",
    );
    caught(
        &src,
        "sql/ddl/delivery_logs.sql (segcast::sql::DDL) is not run by any google_bigquery_job",
    );
    let mut src = sources();
    src.replace(
        "bigquery.tf",
        "    \"delivery_logs\",\n    \"click_logs\",\n    \"recipient_outcomes\",\n",
        "    \"recipient_outcomes\",\n    \"delivery_logs\",\n    \"click_logs\",\n",
    );
    caught(&src, "must run before sql/ddl/recipient_outcomes.sql");
}

#[test]
fn an_over_broad_role_is_caught() {
    let mut src = sources();
    src.replace(
        "iam.tf",
        "{ account = \"delivery\", role = \"roles/datastore.user\" }",
        "{ account = \"delivery\", role = \"roles/editor\" }",
    );
    caught(
        &src,
        "grants roles/editor to serviceAccount:segcast-delivery@",
    );
    let mut src = sources();
    src.replace(
        "iam.tf",
        "{ account = \"scheduler\", role = \"roles/datastore.user\" }",
        "{ account = \"scheduler\", role = \"roles/owner\" }",
    );
    caught(&src, "roles/owner");
    // A role that is not over-broad in general but is not in the reviewed table for this account.
    let mut src = sources();
    src.replace(
        "iam.tf",
        "{ account = \"console\", role = \"roles/bigquery.jobUser\" }",
        "{ account = \"console\", role = \"roles/pubsub.admin\" }",
    );
    caught(
        &src,
        "grants roles/pubsub.admin on a Project to console, which is not in the reviewed roles table",
    );
}

#[test]
fn all_users_on_anything_but_the_click_redirect_is_caught() {
    let mut src = sources();
    src.replace(
        "services.tf",
        "invokers         = { scheduler-invoker = \"serviceAccount:${google_service_account.sa[\"scheduler-invoker\"].email}\" }",
        "invokers         = { scheduler-invoker = \"serviceAccount:${google_service_account.sa[\"scheduler-invoker\"].email}\", anyone = \"allUsers\" }",
    );
    caught(
        &src,
        "only the click redirect (segcast-click-redirect) may be public",
    );
    let mut src = sources();
    src.replace(
        "secrets.tf",
        "resource \"google_secret_manager_secret\" \"click_keys\" {",
        "resource \"google_secret_manager_secret_iam_member\" \"leak\" {\n  secret_id = \"segcast-click-keys\"\n  role      = \"roles/secretmanager.secretAccessor\"\n  member    = \"allAuthenticatedUsers\"\n}\n\nresource \"google_secret_manager_secret\" \"click_keys\" {",
    );
    caught(&src, "allAuthenticatedUsers");
}

#[test]
fn environment_the_code_would_refuse_is_caught() {
    let mut src = sources();
    src.replace(
        "main.tf",
        "    SEGCAST_BUCKET               = google_storage_bucket.exports.name\n",
        "",
    );
    caught(
        &src,
        "the code refuses this environment: SEGCAST_BUCKET is not set",
    );
    let mut src = sources();
    src.replace(
        "variables.tf",
        "  default     = 30\n",
        "  default     = 90\n",
    );
    caught(
        &src,
        "SEGCAST_PUSH_BUDGET_SECONDS must be below SEGCAST_ACK_DEADLINE_SECONDS",
    );
}

#[test]
fn push_auth_wiring_is_checked() {
    let mut src = sources();
    src.replace(
        "scheduler.tf",
        "audience              = local.scheduler_tick_audience",
        "audience              = \"somebody-else\"",
    );
    caught(&src, "its OIDC audience must be \"segcast-scheduler-tick\"");
    let mut src = sources();
    src.replace(
        "services.tf",
        "  min_instances   = 1\n  max_instances   = 1\n",
        "  min_instances   = 1\n  max_instances   = 3\n",
    );
    caught(&src, "max_instance_count must be 1");
}

#[test]
fn a_missing_channel_secret_is_caught() {
    let mut src = sources();
    src.replace(
        "main.tf",
        "\"LINE_CHANNEL_${id}_SECRET\" => google_secret_manager_secret.line_channel[id].id",
        "\"LINE_CHANNEL_${id}_SECRT\" => google_secret_manager_secret.line_channel[id].id",
    );
    caught(&src, "no credentials for channel 1234567890");
}

/// `terraform fmt -check -recursive terraform` (terraform is installed on the development machines).
#[test]
fn terraform_is_formatted() {
    let dir = repo_root().join("terraform");
    let out = std::process::Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff"])
        .arg(&dir)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!(
            "could not run `terraform fmt` ({e}): install terraform (https://developer.hashicorp.com/terraform/install) and put it on PATH"
        ),
    };
    assert!(
        out.status.success(),
        "terraform/ is not formatted; run `terraform fmt -recursive terraform`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_image_cloud_build_does_not_build_is_caught() {
    let model = Model::from_sources(&sources()).unwrap();
    let mut code = Code::from_crate(&repo_root()).unwrap();
    let yaml = std::fs::read_to_string(repo_root().join("cloudbuild.yaml"))
        .unwrap()
        .replace("--target=segcast-delivery", "--target=segcast-deliver");
    code.cloudbuild = serde_yaml::from_str(&yaml).unwrap();
    let p = check(&model, &code);
    assert!(
        p.iter().any(|p| p
            .to_string()
            .contains("runs image segcast-delivery, which no cloudbuild.yaml step builds")),
        "{}",
        show(&p)
    );
}

/// `terraform plan` refuses for_each keys that are only known after apply (a new service account's email):
/// the check evaluates the configuration a second time as the plan sees it.
#[test]
fn for_each_keys_known_only_after_apply_are_caught() {
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  for_each = local.dataset_roles\n",
        "  for_each = { for k, g in local.dataset_roles : \"${g.member}/${g.role}\" => g }\n",
    );
    caught(&src, "terraform plan would fail");
    caught(&src, "are only known after apply");
}

#[test]
fn a_click_row_field_missing_from_click_logs_is_schema_drift() {
    let model = Model::from_sources(&sources()).unwrap();
    let mut code = Code::from_crate(&repo_root()).unwrap();
    let mut extra = code.click_row[0].clone();
    extra.name = "referrer".into();
    code.click_row.push(extra);
    let p = check(&model, &code);
    assert!(
        p.iter().any(|p| p
            .to_string()
            .contains("schema drift between ClickRow and click_logs")
            && p.to_string().contains("referrer")),
        "{}",
        show(&p)
    );
}

/// With the log sink instead of BigQuery subscriptions, its pull subscriptions must exist.
#[test]
fn the_log_sink_variant_is_checked_too() {
    let mut src = sources();
    src.tfvars.push_str("\nenable_log_sink = true\n");
    let p = problems(&src);
    assert!(p.is_empty(), "with enable_log_sink:\n{}", show(&p));
    src.replace(
        "pubsub.tf",
        "name                       = \"${var.click_topic}-sink\"",
        "name                       = \"${var.click_topic}-pull\"",
    );
    caught(
        &src,
        "subscription click-logs-sink: the log sink runs but its pull subscription",
    );
}

#[test]
fn a_misspelt_environment_variable_is_caught() {
    let mut src = sources();
    src.replace(
        "main.tf",
        "    SEGCAST_FANOUT_RATE          = tostring(var.fanout_rate)\n",
        "    SEGCAST_FANOUT_RATES         = tostring(var.fanout_rate)\n",
    );
    caught(&src, "sets SEGCAST_FANOUT_RATES, which no code reads");
}

/// The console reads the LINE channel secrets (tokens for test sends and LINE's validate endpoint) and no
/// other secret, whatever the roles table says: no unconditioned or wider-conditioned reading grant, no grant
/// on the click keys, no role that reads any secret or widens its own access, no custom role gaining a
/// reading permission. Each is broken on purpose here and must be caught.
#[test]
fn the_console_can_read_channel_secrets_only() {
    const READER: &str = "resource \"google_project_iam_member\" \"console_channel_secret_reader\" {\n  count = var.enable_console ? 1 : 0\n\n  project = var.project_id\n  role    = \"roles/secretmanager.secretAccessor\"\n  member  = \"serviceAccount:${google_service_account.sa[\"console\"].email}\"\n";
    const CONDITION: &str = "\n  condition {\n    title       = \"segcast LINE channel secrets\"\n    description = \"Only secrets named segcast-line-channel-*\"\n    expression  = local.channel_secrets_condition\n  }\n";
    const RULE: &str = "the console may read the LINE channel secrets only";

    // The real grant: the value reader, on the project, with the channel-secret condition.
    let model = Model::from_sources(&sources()).unwrap();
    let reader = model
        .all("google_project_iam_member")
        .find(|m| {
            m.str("member")
                == Some("serviceAccount:segcast-console@my-project.iam.gserviceaccount.com")
                && m.str("role") == Some("roles/secretmanager.secretAccessor")
        })
        .expect("the console's channel-secret reader");
    assert_eq!(
        reader.at_str("/condition/0/expression"),
        Some("resource.name.startsWith(\"projects/123456789012/secrets/segcast-line-channel-\")")
    );

    // Unconditioned: every secret in the project.
    let mut src = sources();
    src.replace("iam.tf", &format!("{READER}{CONDITION}"), READER);
    let p = caught(
        &src,
        &format!(
            "grants roles/secretmanager.secretAccessor to console on the project without a condition, so on every secret: {RULE}"
        ),
    );
    assert!(
        p.iter().any(|p| p
            .to_string()
            .contains("on the project to console without a condition")),
        "the roles table's condition is checked too:\n{}",
        show(&p)
    );

    // A condition wide enough for the click keys (segcast-click-keys).
    let mut src = sources();
    src.replace(
        "iam.tf",
        &format!("{READER}{CONDITION}"),
        &format!(
            "{READER}{}",
            CONDITION.replace(
                "local.channel_secrets_condition",
                "\"resource.name.startsWith(\\\"projects/${local.project_number}/secrets/segcast-\\\")\""
            )
        ),
    );
    caught(
        &src,
        &format!(
            "grants roles/secretmanager.secretAccessor to console on the project with the condition resource.name.startsWith(\"projects/123456789012/secrets/segcast-\"): {RULE}"
        ),
    );

    // The click-signing keys themselves.
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  for_each = toset([\"delivery\", \"click-redirect\"])\n",
        "  for_each = toset([\"delivery\", \"click-redirect\", \"console\"])\n",
    );
    caught(
        &src,
        &format!(
            "grants roles/secretmanager.secretAccessor to console on secret segcast-click-keys: {RULE}"
        ),
    );

    // The create-only custom role gaining a reading permission: unconditioned, so every secret.
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  permissions = [\"secretmanager.secrets.create\"]",
        "  permissions = [\"secretmanager.secrets.create\", \"secretmanager.versions.access\"]",
    );
    caught(
        &src,
        &format!(
            "grants projects/my-project/roles/segcastChannelSecretCreator to console on the project without a condition, so on every secret: {RULE}"
        ),
    );
    caught(
        &src,
        "holds secretmanager.versions.access, which the reviewed custom role segcastChannelSecretCreator does not",
    );

    // A role that reads more than values (and changes the secrets' IAM), even with the condition.
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  role    = \"roles/secretmanager.secretVersionAdder\"",
        "  role    = \"roles/secretmanager.admin\"",
    );
    caught(
        &src,
        &format!(
            "grants roles/secretmanager.admin to console, which can do more than read the values of the secrets it is granted on (read every secret, change IAM, or act as another account): {RULE}"
        ),
    );

    // And it does need to read them: without the grant, test sends and validation have no credentials.
    let mut src = sources();
    src.replace(
        "iam.tf",
        READER,
        &READER.replace("secretAccessor", "viewer"),
    );
    caught(
        &src,
        "segcast-console): its code needs secretmanager.versions.access on the channel secrets",
    );
}

/// Project-level grants on the channel secrets carry the condition that keeps them to those secrets.
#[test]
fn channel_secret_grants_are_narrowed_to_the_channel_secrets() {
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  role    = \"roles/secretmanager.secretAccessor\"\n  member  = \"serviceAccount:${google_service_account.sa[each.value].email}\"\n\n  condition {\n    title       = \"segcast LINE channel secrets\"\n    description = \"Only secrets named segcast-line-channel-*\"\n    expression  = local.channel_secrets_condition\n  }\n",
        "  role    = \"roles/secretmanager.secretAccessor\"\n  member  = \"serviceAccount:${google_service_account.sa[each.value].email}\"\n",
    );
    caught(
        &src,
        "grants roles/secretmanager.secretAccessor on the project to delivery without a condition: the reviewed grant reaches the LINE channel secrets only",
    );
    caught(&src, "on the project to scheduler without a condition");
    let mut src = sources();
    src.replace(
        "main.tf",
        "secrets/${local.channel_secret_prefix}\\\")\"",
        "secrets/\\\")\"",
    );
    caught(
        &src,
        "on the project to console with the condition resource.name.startsWith(\"projects/123456789012/secrets/\")",
    );
    caught(&src, "on the project to delivery with the condition");
    // Creating is authorized on the project: a condition on the secret's name would refuse every creation.
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  role    = google_project_iam_custom_role.channel_secret_creator[0].name\n  member  = \"serviceAccount:${google_service_account.sa[\"console\"].email}\"\n",
        "  role    = google_project_iam_custom_role.channel_secret_creator[0].name\n  member  = \"serviceAccount:${google_service_account.sa[\"console\"].email}\"\n\n  condition {\n    title      = \"channel secrets\"\n    expression = local.channel_secrets_condition\n  }\n",
    );
    caught(
        &src,
        "its code needs secretmanager.secrets.create, but no unconditioned project grant gives it",
    );
}

/// The console, the delivery handler and the scheduler use Secret Manager for channel secrets, with the
/// permissions their code needs, and terraform's channel secrets have the name the code uses.
#[test]
fn the_channel_secret_store_is_wired_up() {
    let mut src = sources();
    src.replace(
        "services.tf",
        "    SEGCAST_CHANNEL_SECRETS      = local.channel_secret_store # channels registered in the console\n",
        "",
    );
    caught(
        &src,
        "segcast-delivery): SEGCAST_CHANNEL_SECRETS must be secret-manager, not None",
    );
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  role    = \"roles/secretmanager.secretVersionAdder\"",
        "  role    = \"roles/secretmanager.viewer\"",
    );
    caught(
        &src,
        "its code needs secretmanager.versions.add on the channel secrets, but no project grant",
    );
    let mut src = sources();
    src.replace(
        "iam.tf",
        "  for_each = toset([\"delivery\", \"scheduler\"])\n",
        "  for_each = toset([\"delivery\"])\n",
    );
    caught(
        &src,
        "segcast-scheduler): its code needs secretmanager.versions.access on the channel secrets",
    );
    let mut src = sources();
    src.replace(
        "secrets.tf",
        "  secret_id = \"${local.channel_secret_prefix}${each.value}-secret\"",
        "  secret_id = \"line-channel-${each.value}\"",
    );
    caught(
        &src,
        "LINE_CHANNEL_1234567890_SECRET reads secret line-channel-1234567890, but the code keeps channel 1234567890's secret in segcast-line-channel-1234567890-secret",
    );
}

/// The console's environment is read as the console reads it: every variable it is given is one its code
/// reads, with values it accepts, IAP sign-in, and segment datasets the console and scheduler can read.
#[test]
fn the_console_environment_is_checked() {
    let model = Model::from_sources(&sources()).unwrap();
    let console = model
        .find("google_cloud_run_v2_service", "name", "segcast-console")
        .expect("console service");
    let env = console
        .at("/template/0/containers/0/env")
        .unwrap()
        .to_string();
    for want in [
        r#"{"name":"SEGCAST_CONSOLE_AUTH","value":"iap"}"#,
        r#"{"name":"SEGCAST_CHANNEL_SECRETS","value":"secret-manager"}"#,
        r#"{"name":"SEGCAST_SEGMENT_DATASETS","value":"segcast,my-project.crm"}"#,
        r#"{"name":"SEGCAST_CONSOLE_ADMINS","value":"alice@example.com"}"#,
        r#"{"name":"SEGCAST_APPROVAL_THRESHOLD","value":"100000"}"#,
        r#"{"name":"SEGCAST_IAP_AUDIENCE","value":"/projects/123456789012/global/backendServices/4242424242"}"#,
    ] {
        assert!(env.contains(want), "{want} not in {env}");
    }

    let mut src = sources();
    src.replace(
        "services.tf",
        "    SEGCAST_CONSOLE_ADMINS     = join(\",\", var.console_admins)\n",
        "    SEGCAST_CONSOLE_ADMIN      = join(\",\", var.console_admins)\n",
    );
    caught(&src, "sets SEGCAST_CONSOLE_ADMIN, which no code reads");
    let mut src = sources();
    src.replace(
        "services.tf",
        "    SEGCAST_CONSOLE_AUTH       = \"iap\"\n",
        "    SEGCAST_CONSOLE_AUTH       = \"local\"\n",
    );
    caught(
        &src,
        "the console refuses this environment: SEGCAST_CONSOLE_PASSWORD is not set",
    );
    let mut src = sources();
    src.tfvars = src.tfvars.replace(
        "console_admins = [\"alice@example.com\"]",
        "console_admins = [\"alice\"]",
    );
    caught(
        &src,
        "the console refuses this environment: SEGCAST_CONSOLE_ADMINS",
    );
    let mut src = sources();
    src.replace(
        "services.tf",
        "/global/backendServices/${google_compute_backend_service.console[0].generated_id}\"",
        "/global/backendServices/1\"",
    );
    caught(
        &src,
        "is not /projects/<number>/global/backendServices/<id> of a backend service with IAP enabled",
    );
    let mut src = sources();
    src.replace(
        "main.tf",
        "    [google_bigquery_dataset.segcast.dataset_id],\n",
        "    [google_bigquery_dataset.segcast.dataset_id, \"elsewhere.crm\"],\n",
    );
    caught(
        &src,
        "SEGCAST_SEGMENT_DATASETS lets segments read elsewhere.crm, but console is not granted read access",
    );
    caught(&src, "but scheduler is not granted read access to it");
}

/// Without the console, nothing of it is granted, and the rest still checks out.
#[test]
fn the_console_is_optional() {
    let mut src = sources();
    src.tfvars.push_str("\nenable_console = false\n");
    let p = problems(&src);
    assert!(p.is_empty(), "with enable_console = false:\n{}", show(&p));
    let model = Model::from_sources(&src).unwrap();
    assert_eq!(model.all("google_project_iam_custom_role").count(), 0);
    assert!(model.all("google_project_iam_member").all(|m| {
        !m.str("member")
            .unwrap_or_default()
            .contains("segcast-console@")
            || !m.str("role").unwrap_or_default().contains("secret")
    }),);
}

/// Every service terraform runs is a binary of this repository (the console's included: its environment is
/// checked like the others', with no exemption for code to come).
#[test]
fn a_service_whose_binary_does_not_exist_is_caught() {
    let model = Model::from_sources(&sources()).unwrap();
    let mut code = Code::from_crate(&repo_root()).unwrap();
    code.packages.retain(|p| p != "segcast-console");
    let p = check(&model, &code);
    assert!(
        p.iter().any(|p| p
            .to_string()
            .contains("no package under services/ or functions/ is named segcast-console")),
        "{}",
        show(&p)
    );
}

/// The variable names in the README's settings table (the rows between its header and the next blank line).
fn readme_settings(readme: &str) -> std::collections::BTreeSet<String> {
    let start = readme
        .find("| variable | meaning | default |")
        .expect("the README has a settings table");
    let mut names = std::collections::BTreeSet::new();
    for line in readme[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        for part in first.split('`').skip(1).step_by(2) {
            names.insert(part.to_owned());
        }
    }
    names
}

/// The settings table's names against the code's table: `(missing from the README, not in the code)`.
fn settings_drift(readme: &str) -> (Vec<String>, Vec<String>) {
    let documented = readme_settings(readme);
    let code: std::collections::BTreeSet<String> = segcast::config::VARS
        .iter()
        .map(|v| v.name.to_owned())
        .collect();
    let patterns = ["LINE_CHANNEL_<ID>_SECRET", "LINE_CHANNEL_<ID>_TOKEN"];
    (
        code.difference(&documented).cloned().collect(),
        documented
            .difference(&code)
            .filter(|n| !patterns.contains(&n.as_str()))
            .cloned()
            .collect(),
    )
}

#[test]
fn the_readme_documents_every_setting_and_no_other() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let (missing, unknown) = settings_drift(&readme);
    assert!(
        missing.is_empty(),
        "settings the README's table does not document: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "README settings the code does not read: {unknown:?}"
    );
    // The check can fail: a row removed, and a row for a setting that does not exist.
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `SEGCAST_FANOUT_RATE`"))
        .unwrap();
    let (missing, _) = settings_drift(&readme.replace(&format!("{row}\n"), ""));
    assert_eq!(missing, vec!["SEGCAST_FANOUT_RATE".to_owned()]);
    let (_, unknown) =
        settings_drift(&readme.replace(row, &format!("{row}\n| `SEGCAST_FANOUT_RAET` | typo | |")));
    assert_eq!(unknown, vec!["SEGCAST_FANOUT_RAET".to_owned()]);
}

/// Rust sources of the library and the service binaries that read the environment themselves.
fn env_readers(root: &std::path::Path) -> Vec<String> {
    let mut stack = vec![
        root.join("crates/segcast/src"),
        root.join("services"),
        root.join("functions"),
    ];
    let mut found = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                // The one module that reads the environment; the click-redirect bench example is a load
                // generator with settings of its own.
                && !p.ends_with("crates/segcast/src/config/vars.rs")
                && !p.to_string_lossy().contains("/examples/")
            {
                let text = std::fs::read_to_string(&p).unwrap();
                if text.contains("std::env::var") || text.contains("env::vars()") {
                    found.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn only_the_configuration_module_reads_the_environment() {
    let root = repo_root();
    assert_eq!(env_readers(&root), Vec::<String>::new());
    // The check can fail: a copy of the library with one stray reader.
    let copy = std::env::temp_dir().join(format!("segcast-env-readers-{}", std::process::id()));
    let stray = copy.join("crates/segcast/src/stray.rs");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, "fn f() { let _ = std::env::var(\"X\"); }").unwrap();
    let found = env_readers(&copy);
    std::fs::remove_dir_all(&copy).unwrap();
    assert_eq!(found, vec!["crates/segcast/src/stray.rs".to_owned()]);
}

#[test]
fn log_metrics_match_what_the_code_logs() {
    // A renamed log message silently breaks the metric and the "campaign stuck" alert built on it.
    let mut src = sources();
    src.replace(
        "modules/monitoring/main.tf",
        "jsonPayload.message=\\\"fan-out yields at its time budget\\\"",
        "jsonPayload.message=\\\"fan-out yielded at its time budget\\\"",
    );
    caught(
        &src,
        "matches the log message \"fan-out yielded at its time budget\", which the code never writes",
    );
    // A field the log line does not carry.
    let mut src = sources();
    src.replace(
        "modules/monitoring/main.tf",
        "value_extractor = \"EXTRACT(jsonPayload.rate_limited)\"",
        "value_extractor = \"EXTRACT(jsonPayload.rate_limits)\"",
    );
    caught(
        &src,
        "extracts jsonPayload.rate_limits, which the code's log line does not carry",
    );
    // A label with unbounded values.
    let mut src = sources();
    src.replace(
        "modules/monitoring/main.tf",
        "    channel = \"EXTRACT(jsonPayload.channel)\"\n  }\n\n  bucket_options {\n    exponential_buckets {\n      num_finite_buckets = 16\n      growth_factor      = 2\n      scale              = 10",
        "    channel = \"EXTRACT(jsonPayload.campaign)\"\n  }\n\n  bucket_options {\n    exponential_buckets {\n      num_finite_buckets = 16\n      growth_factor      = 2\n      scale              = 10",
    );
    caught(&src, "labels a metric by campaign");
}
