//! BigQuery: statements and queries through the official client (parameters bound, never spliced), and
//! `insertAll` over REST for the log sink (the official crates have no insertAll, and the Storage Write API's
//! reused writers fail against the emulator).

use crate::config::Settings;
use anyhow::{Context, anyhow};
use google_cloud_auth::credentials::Credentials;
use google_cloud_bigquery::client::BigQuery as BqClient;
use google_cloud_bigquery_v2::model::{QueryParameter, QueryParameterType, QueryParameterValue};

pub use google_cloud_bigquery::query::Row;

#[derive(Clone)]
pub struct BigQuery {
    client: BqClient,
    rest_base: String,
    creds: Credentials,
    http: reqwest::Client,
    pub project: String,
    pub dataset: String,
}

/// A named query parameter (`@name` in the SQL).
#[derive(Debug, Clone)]
pub enum Param {
    Str(&'static str, String),
    Int(&'static str, i64),
}

impl Param {
    fn to_query_parameter(&self) -> QueryParameter {
        let (name, ty, value) = match self {
            Param::Str(n, v) => (*n, "STRING", v.clone()),
            Param::Int(n, v) => (*n, "INT64", v.to_string()),
        };
        QueryParameter::new()
            .set_name(name)
            .set_parameter_type(QueryParameterType::new().set_type(ty))
            .set_parameter_value(QueryParameterValue::new().set_value(value))
    }
}

impl BigQuery {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let creds = super::credentials(settings.endpoints.bigquery.as_deref())?;
        let mut b = BqClient::builder()
            .with_project_id(settings.project_id.clone())
            .with_credentials(creds.clone());
        if let Some(ep) = &settings.endpoints.bigquery {
            b = b.with_endpoint(ep.clone());
        }
        Ok(Self {
            client: b.build().await.context("BigQuery client")?,
            rest_base: settings
                .endpoints
                .bigquery
                .clone()
                .unwrap_or_else(|| "https://bigquery.googleapis.com".into()),
            creds,
            http: reqwest::Client::new(),
            project: settings.project_id.clone(),
            dataset: settings.dataset.clone(),
        })
    }

    /// Runs a query and returns all its rows (use for small results: counts, samples, stats).
    pub async fn query(&self, sql: &str, params: &[Param]) -> anyhow::Result<Vec<Row>> {
        let mut q = self.client.query(sql);
        if !params.is_empty() {
            q = q
                .set_parameter_mode("NAMED")
                .set_query_parameters(params.iter().map(Param::to_query_parameter));
        }
        let done = q
            .until_done()
            .await
            .map_err(|e| anyhow!("BigQuery: {e}\n--- statement:\n{sql}"))?;
        let mut rows = done.read();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            out.push(row.map_err(|e| anyhow!("BigQuery rows: {e}"))?);
        }
        Ok(out)
    }

    /// Runs a query and returns its rows as a stream fetched page by page (for results too large to hold).
    pub async fn query_stream(&self, sql: &str, params: &[Param]) -> anyhow::Result<RowStream> {
        let mut q = self.client.query(sql);
        if !params.is_empty() {
            q = q
                .set_parameter_mode("NAMED")
                .set_query_parameters(params.iter().map(Param::to_query_parameter));
        }
        let done = q
            .until_done()
            .await
            .map_err(|e| anyhow!("BigQuery: {e}\n--- statement:\n{sql}"))?;
        Ok(RowStream(done.read()))
    }

    /// Runs a statement (DDL, DML, CTAS, EXPORT DATA) to completion.
    pub async fn execute(&self, sql: &str, params: &[Param]) -> anyhow::Result<()> {
        self.query(sql, params).await.map(|_| ())
    }

    /// Runs a query whose first row's `column` is an integer.
    pub async fn query_i64(
        &self,
        sql: &str,
        params: &[Param],
        column: &str,
    ) -> anyhow::Result<i64> {
        let rows = self.query(sql, params).await?;
        let row = rows.first().ok_or_else(|| anyhow!("no row from:\n{sql}"))?;
        let v: Option<i64> = row
            .get(column)
            .map_err(|e| anyhow!("column {column}: {e}"))?;
        Ok(v.unwrap_or(0))
    }

    /// Asks BigQuery what `sql` would do without running it (a dry-run job, over REST like `insertAll`):
    /// `Ok(Err(reason))` when BigQuery refuses the SQL (syntax, unknown table or column...).
    pub async fn dry_run(&self, sql: &str) -> anyhow::Result<Result<DryRun, String>> {
        let body = serde_json::json!({
            "configuration": {"dryRun": true, "query": {"query": sql, "useLegacySql": false}}
        });
        let v = match self.post_json("jobs", &body).await? {
            Ok(v) => v,
            Err(reason) => return Ok(Err(reason)),
        };
        let q = &v["statistics"]["query"];
        let schema = if q["schema"].is_object() {
            &q["schema"]
        } else {
            &v["configuration"]["query"]["schema"]
        };
        let fields = schema["fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            c["type"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let referenced_tables = q["referencedTables"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|r| {
                        format!(
                            "{}.{}.{}",
                            r["projectId"].as_str().unwrap_or_default(),
                            r["datasetId"].as_str().unwrap_or_default(),
                            r["tableId"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Ok(DryRun {
            statement_type: q["statementType"].as_str().unwrap_or_default().to_owned(),
            fields,
            bytes: q["totalBytesProcessed"]
                .as_str()
                .and_then(|b| b.parse().ok())
                .unwrap_or(0),
            referenced_tables,
        }))
    }

    /// Runs a query and returns its first `limit` rows as JSON objects (column -> value as BigQuery's REST API
    /// gives it), with the column names: for previews of arbitrary SQL, whose columns are not known here.
    pub async fn sample(
        &self,
        sql: &str,
        limit: u32,
    ) -> anyhow::Result<
        Result<(Vec<String>, Vec<serde_json::Map<String, serde_json::Value>>), String>,
    > {
        let body = serde_json::json!({
            "query": sql,
            "useLegacySql": false,
            "maxResults": limit,
            "timeoutMs": 60000,
        });
        let v = match self.post_json("queries", &body).await? {
            Ok(v) => v,
            Err(reason) => return Ok(Err(reason)),
        };
        let names: Vec<String> = v["schema"]["fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let rows = v["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        names
                            .iter()
                            .zip(r["f"].as_array().into_iter().flatten())
                            .map(|(n, cell)| (n.clone(), cell["v"].clone()))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Ok((names, rows)))
    }

    /// POSTs to `projects/<p>/<what>`; `Ok(Err(message))` for BigQuery's 4xx answers (the caller's SQL).
    async fn post_json(
        &self,
        what: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Result<serde_json::Value, String>> {
        let headers = super::auth_headers(&self.creds).await?;
        let url = format!(
            "{}/bigquery/v2/projects/{}/{what}",
            self.rest_base, self.project
        );
        let resp = self
            .http
            .post(url)
            .headers(headers)
            .json(body)
            .send()
            .await
            .with_context(|| format!("BigQuery {what}"))?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.is_client_error() {
            let msg = v["error"]["message"]
                .as_str()
                .unwrap_or("refused")
                .to_owned();
            return Ok(Err(msg));
        }
        if !status.is_success() {
            return Err(anyhow!("BigQuery {what}: HTTP {status}: {v}"));
        }
        Ok(Ok(v))
    }

    /// Streams rows into `table` with `insertAll`. Each row is `(insert_id, json)`.
    pub async fn insert_all(
        &self,
        table: &str,
        rows: &[(String, serde_json::Value)],
    ) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let body = serde_json::json!({
            "kind": "bigquery#tableDataInsertAllRequest",
            "skipInvalidRows": false,
            "ignoreUnknownValues": false,
            "rows": rows.iter().map(|(id, json)| serde_json::json!({"insertId": id, "json": json})).collect::<Vec<_>>(),
        });
        let headers = super::auth_headers(&self.creds).await?;
        let url = format!(
            "{}/bigquery/v2/projects/{}/datasets/{}/tables/{table}/insertAll",
            self.rest_base, self.project, self.dataset
        );
        let resp = self
            .http
            .post(url)
            .headers(headers)
            .json(&body)
            .send()
            .await
            .context("BigQuery insertAll")?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(anyhow!(
                "BigQuery insertAll into {table}: HTTP {status}: {v}"
            ));
        }
        if let Some(errs) = v
            .get("insertErrors")
            .and_then(|e| e.as_array())
            .filter(|e| !e.is_empty())
        {
            return Err(anyhow!(
                "BigQuery insertAll into {table}: {} rows refused: {}",
                errs.len(),
                errs[0]
            ));
        }
        Ok(())
    }
}

/// What a dry run says about a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    /// `SELECT`, `INSERT`, `CREATE_TABLE`, ... (BigQuery's name).
    pub statement_type: String,
    /// The result's columns: (name, type).
    pub fields: Vec<(String, String)>,
    /// Bytes the query would scan.
    pub bytes: u64,
    /// `project.dataset.table` of every table read (empty where the emulator does not say).
    pub referenced_tables: Vec<String>,
}

/// Rows of [`BigQuery::query_stream`], one page in memory at a time.
pub struct RowStream(google_cloud_bigquery::query::RowIterator);

impl RowStream {
    pub async fn next(&mut self) -> Option<anyhow::Result<Row>> {
        self.0
            .next()
            .await
            .map(|r| r.map_err(|e| anyhow!("BigQuery rows: {e}")))
    }
}
