//! Segments: BigQuery SQL choosing the recipients. Checked before anything runs: one read-only SELECT
//! ([`Segment::parse_sql`]), reading only allowed datasets, then a BigQuery dry run (it must be a SELECT,
//! return a STRING `user_id` column, and scan no more than the byte cap). The preview adds the recipient
//! count and a sample of rows.

use super::auth::{Identity, Role};
use super::error::{ApiError, ApiResult};
use super::{Body, ConsoleApp, audit};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use segcast::catalog::Segment;
use segcast::domain::SegmentId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

pub fn routes() -> Router<ConsoleApp> {
    Router::new()
        .route("/api/segments", get(list).post(create))
        .route("/api/segments/preview", post(preview))
        .route("/api/segments/{id}", get(one).put(update))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SegmentInput {
    pub name: String,
    pub sql: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PreviewInput {
    pub sql: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Distinct user IDs the segment returns now.
    pub count: i64,
    pub columns: Vec<Column>,
    /// Up to 10 rows.
    #[schema(value_type = Vec<Object>)]
    pub sample: Vec<serde_json::Map<String, Value>>,
    /// Bytes the query scans (as BigQuery's dry run says).
    pub bytes: u64,
}

/// The SQL with string literals, quoted identifiers' contents kept, and comments blanked, so keywords inside
/// strings or comments are not mistaken for SQL.
fn without_strings_and_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(' ');
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                out.push(' ');
            }
            other => out.push(other),
        }
    }
    out
}

/// Tables the SQL reads, as written after `FROM`/`JOIN` and after each comma of a `FROM` clause (comma joins,
/// also after a `JOIN ... ON ...`): `dataset.table` or `project.dataset.table`, backticks removed. One-part names
/// (CTEs) and `UNNEST(...)`/subqueries are left out. A pre-check only: in production the dry run's
/// `referencedTables` is checked too.
pub fn referenced_tables(sql: &str) -> Vec<String> {
    use std::sync::OnceLock;
    static TOKEN: OnceLock<regex::Regex> = OnceLock::new();
    let token = TOKEN.get_or_init(|| {
        regex::Regex::new(
            r"`[^`]*`(?:\s*\.\s*(?:`[^`]*`|[\w-]+))*|[A-Za-z_][\w-]*(?:\s*\.\s*(?:`[^`]*`|[\w-]+))*|[(),]",
        )
        .expect("regex")
    });
    const ENDS_FROM: &[&str] = &[
        "where",
        "group",
        "having",
        "qualify",
        "window",
        "order",
        "limit",
        "union",
        "intersect",
        "except",
        "select",
    ];
    let clean = without_strings_and_comments(sql);
    let mut out = Vec::new();
    // Per parenthesis depth: whether a FROM clause is open there.
    let mut in_from = vec![false];
    let mut expect_table = false;
    for m in token.find_iter(&clean) {
        let t = m.as_str();
        match t {
            "(" => {
                in_from.push(false);
                expect_table = false;
            }
            ")" => {
                if in_from.len() > 1 {
                    in_from.pop();
                }
                expect_table = false;
            }
            "," => {
                if *in_from.last().expect("depth") {
                    expect_table = true;
                }
            }
            word => {
                let lower = word.to_ascii_lowercase();
                if lower == "from" || lower == "join" {
                    *in_from.last_mut().expect("depth") = true;
                    expect_table = true;
                } else if ENDS_FROM.contains(&lower.as_str()) {
                    *in_from.last_mut().expect("depth") = false;
                    expect_table = false;
                } else if expect_table {
                    expect_table = false;
                    let name: String = word
                        .chars()
                        .filter(|c| *c != '`' && !c.is_whitespace())
                        .collect();
                    if name.contains('.') {
                        out.push(name);
                    }
                }
            }
        }
    }
    out
}

/// Whether `table` (`dataset.table` or `project.dataset.table`) is in an allowed dataset.
fn allowed(table: &str, project: &str, datasets: &[String]) -> bool {
    let parts: Vec<&str> = table.split('.').collect();
    let (p, d) = match parts.as_slice() {
        [d, _] => (project, *d),
        [p, d, _] => (*p, *d),
        _ => return false,
    };
    datasets
        .iter()
        .any(|allowed| match allowed.split_once('.') {
            Some((ap, ad)) => ap == p && ad == d,
            None => p == project && allowed == d,
        })
}

/// Every check short of running the query. Returns the normalized SQL and its columns.
pub(crate) async fn check_sql(
    app: &ConsoleApp,
    sql: &str,
) -> ApiResult<(String, Vec<(String, String)>, u64)> {
    let sql = Segment::parse_sql(sql).map_err(ApiError::from)?;
    let project = &app.ctx.settings.project_id;
    let datasets = &app.settings.segment_datasets;
    for t in referenced_tables(&sql) {
        if !allowed(&t, project, datasets) {
            return Err(ApiError::field(
                "sql",
                format!(
                    "{t} is outside the datasets segments may read ({})",
                    datasets.join(", ")
                ),
            ));
        }
    }
    let dry = match app.ctx.gcp.bigquery.dry_run(&sql).await? {
        Ok(d) => d,
        Err(reason) => return Err(ApiError::field("sql", format!("BigQuery says: {reason}"))),
    };
    if !dry.statement_type.is_empty() && dry.statement_type != "SELECT" {
        return Err(ApiError::field(
            "sql",
            format!("a segment is a SELECT, not a {}", dry.statement_type),
        ));
    }
    for t in &dry.referenced_tables {
        if !allowed(t, project, datasets) {
            return Err(ApiError::field(
                "sql",
                format!(
                    "{t} is outside the datasets segments may read ({})",
                    datasets.join(", ")
                ),
            ));
        }
    }
    match dry.fields.iter().find(|(n, _)| n == "user_id") {
        None => {
            return Err(ApiError::field(
                "sql",
                format!(
                    "the query must return a user_id column (it returns {})",
                    dry.fields
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Some((_, ty)) if ty != "STRING" => {
            return Err(ApiError::field(
                "sql",
                format!("user_id must be a STRING (LINE user IDs), not {ty}"),
            ));
        }
        Some(_) => {}
    }
    if dry.bytes > app.settings.segment_max_bytes {
        return Err(ApiError::field(
            "sql",
            format!(
                "the query would scan {} bytes, over this deployment's cap of {}: narrow it (partitions, fewer columns)",
                dry.bytes, app.settings.segment_max_bytes
            ),
        ));
    }
    Ok((sql, dry.fields, dry.bytes))
}

#[utoipa::path(post, path = "/api/segments/preview", tag = "segments", request_body = PreviewInput,
    responses((status = 200, body = Preview), (status = 422, body = super::error::ErrorBody)))]
pub async fn preview(
    State(app): State<ConsoleApp>,
    who: Identity,
    Body(input): Body<PreviewInput>,
) -> ApiResult<Json<Preview>> {
    who.require(Role::Editor, "preview segments")?;
    let (sql, fields, bytes) = check_sql(&app, &input.sql).await?;
    let count = count(&app, &sql).await?;
    let q = segcast::sql::SEGMENT_SAMPLE.render(&[("segment_sql", &sql)]);
    let sample = match app.ctx.gcp.bigquery.sample(&q, 10).await? {
        Ok((_, rows)) => rows,
        Err(reason) => return Err(ApiError::field("sql", format!("BigQuery says: {reason}"))),
    };
    Ok(Json(Preview {
        count,
        columns: fields
            .into_iter()
            .map(|(name, ty)| Column { name, ty })
            .collect(),
        sample,
        bytes,
    }))
}

/// Distinct user IDs the segment returns now.
pub(crate) async fn count(app: &ConsoleApp, sql: &str) -> ApiResult<i64> {
    Ok(app
        .ctx
        .gcp
        .bigquery
        .query_i64(
            &segcast::sql::SEGMENT_COUNT.render(&[("segment_sql", sql)]),
            &[],
            "n",
        )
        .await?)
}

fn check_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(ApiError::field(
            "name",
            "give a name of 1 to 100 characters",
        ));
    }
    Ok(n.to_owned())
}

#[utoipa::path(get, path = "/api/segments", tag = "segments", responses((status = 200, body = Vec<Segment>)))]
pub async fn list(State(app): State<ConsoleApp>, _who: Identity) -> ApiResult<Json<Vec<Segment>>> {
    let mut all: Vec<Segment> = app.ds().list().await?;
    all.sort_by_key(|c| std::cmp::Reverse(c.updated_at));
    Ok(Json(all))
}

pub(crate) async fn get_segment(app: &ConsoleApp, id: &str) -> ApiResult<Segment> {
    app.ds()
        .get::<Segment>(id)
        .await?
        .ok_or_else(|| ApiError::not_found("segment", id))
}

#[utoipa::path(get, path = "/api/segments/{id}", tag = "segments",
    responses((status = 200, body = Segment), (status = 404, body = super::error::ErrorBody)))]
pub async fn one(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Segment>> {
    Ok(Json(get_segment(&app, &id).await?))
}

#[utoipa::path(post, path = "/api/segments", tag = "segments", request_body = SegmentInput,
    responses((status = 201, body = Segment), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<ConsoleApp>,
    who: Identity,
    Body(input): Body<SegmentInput>,
) -> ApiResult<(StatusCode, Json<Segment>)> {
    who.require(Role::Editor, "create segments")?;
    let name = check_name(&input.name)?;
    let (sql, fields, _) = check_sql(&app, &input.sql).await?;
    let segment = Segment {
        id: SegmentId::generate(),
        name,
        sql,
        updated_at: OffsetDateTime::now_utc(),
        columns: fields.into_iter().map(|(n, _)| n).collect(),
        updated_by: Some(who.email.clone()),
    };
    audit::save(
        app.ds(),
        &who,
        "segment.create",
        segment.id.as_str(),
        None::<&Segment>,
        &segment,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(segment)))
}

/// Refused while a campaign using it is scheduled or sending (its recipients are being extracted from it).
#[utoipa::path(put, path = "/api/segments/{id}", tag = "segments", request_body = SegmentInput,
    responses((status = 200, body = Segment), (status = 409, body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
    Body(input): Body<SegmentInput>,
) -> ApiResult<Json<Segment>> {
    who.require(Role::Editor, "edit segments")?;
    let before = get_segment(&app, &id).await?;
    let name = check_name(&input.name)?;
    let (sql, fields, _) = check_sql(&app, &input.sql).await?;
    let campaigns: Vec<segcast::domain::Campaign> = app.ds().list().await?;
    if let Some(c) = campaigns.iter().find(|c| {
        c.segment_id == before.id
            && !c.status.is_final()
            && c.status != segcast::domain::CampaignStatus::Draft
    }) {
        return Err(ApiError::conflict(format!(
            "campaign {:?} ({}) uses this segment and is {}: cancel it or create a new segment",
            c.name, c.id, c.status
        )));
    }
    let after = Segment {
        id: before.id.clone(),
        name,
        sql,
        updated_at: OffsetDateTime::now_utc(),
        columns: fields.into_iter().map(|(n, _)| n).collect(),
        updated_by: Some(who.email.clone()),
    };
    audit::save(app.ds(), &who, "segment.update", &id, Some(&before), &after).await?;
    Ok(Json(after))
}

#[cfg(test)]
mod tests {
    use super::{allowed, referenced_tables};

    #[test]
    fn finds_tables_after_from_join_and_commas_but_not_in_strings_or_comments() {
        let sql = "WITH a AS (SELECT user_id FROM `p.crm.users`) \
                   SELECT a.user_id FROM a JOIN crm.orders o ON o.u = a.user_id, other.t AS x, y.z \
                   WHERE note = 'FROM secret.table' -- JOIN hidden.t\n";
        assert_eq!(
            referenced_tables(sql),
            vec!["p.crm.users", "crm.orders", "other.t", "y.z"]
        );
        assert!(referenced_tables("SELECT 'x' AS user_id FROM UNNEST([1])").is_empty());
    }

    #[test]
    fn datasets_are_matched_by_project_and_name() {
        let ds = vec!["crm".to_owned(), "other-project.shared".to_owned()];
        assert!(allowed("crm.users", "proj", &ds));
        assert!(allowed("proj.crm.users", "proj", &ds));
        assert!(!allowed("elsewhere.crm.users", "proj", &ds));
        assert!(allowed("other-project.shared.t", "proj", &ds));
        assert!(!allowed("secret.t", "proj", &ds));
        assert!(!allowed("region-us.INFORMATION_SCHEMA.JOBS", "proj", &ds));
    }
}
