//! The export bridge against the real emulators: what bqemulator's EXPORT DATA writes is listed and served
//! through the GCS endpoint clients get (STORAGE_EMULATOR_HOST), and plain JSON-API use still works.
#![allow(unsafe_code)] // child processes and signals of the stack under test (libc)

mod common;

use std::collections::BTreeSet;

use devstack::{Stack, StackOptions};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn post_json(url: &str, body: Value) -> Value {
    let resp = client()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "POST {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn query(stack: &Stack, sql: &str) -> Value {
    let url = format!(
        "{}/bigquery/v2/projects/{}/queries",
        stack.bigquery_url(),
        stack.project_id()
    );
    let resp = post_json(&url, json!({ "query": sql, "useLegacySql": false })).await;
    assert_eq!(resp["jobComplete"], true, "{resp}");
    resp
}

/// Lists object names and sizes under `prefix` through the bridge, following pages.
async fn list(stack: &Stack, prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client()
            .get(format!(
                "{}/storage/v1/b/{}/o",
                stack.storage_url(),
                stack.bucket()
            ))
            .query(&[("prefix", prefix), ("maxResults", "2")]);
        if let Some(t) = &token {
            req = req.query(&[("pageToken", t)]);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "list {prefix}");
        let page: Value = resp.json().await.unwrap();
        for item in page["items"].as_array().into_iter().flatten() {
            out.push((
                item["name"].as_str().unwrap().to_string(),
                item["size"].as_str().unwrap().parse().unwrap(),
            ));
        }
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return out,
        }
    }
}

async fn download(stack: &Stack, object: &str) -> Vec<u8> {
    let url = format!(
        "{}/storage/v1/b/{}/o/{}?alt=media",
        stack.storage_url(),
        stack.bucket(),
        object.replace('/', "%2F")
    );
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.bytes().await.unwrap().to_vec()
}

fn ndjson_user_ids(bytes: &[u8]) -> Vec<(String, i64)> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["user_id"].as_str().unwrap().to_string(),
                v["n"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_data_is_listed_and_served_through_the_gcs_endpoint() {
    // A small shard threshold, so 3,000 rows export as several files.
    let opts = StackOptions {
        export_shard_threshold_bytes: 10_000,
        ..StackOptions::default()
    };
    let stack = Stack::start(opts).await.expect("stack starts");
    let (bq, project) = (
        stack.bigquery_url().to_string(),
        stack.project_id().to_string(),
    );
    let base = format!("{bq}/bigquery/v2/projects/{project}");
    post_json(
        &format!("{base}/datasets"),
        json!({"datasetReference": {"projectId": project, "datasetId": "seg"}}),
    )
    .await;
    post_json(
        &format!("{base}/datasets/seg/tables"),
        json!({
            "tableReference": {"projectId": project, "datasetId": "seg", "tableId": "users"},
            "schema": {"fields": [{"name": "user_id", "type": "STRING"}, {"name": "n", "type": "INT64"}]}
        }),
    )
    .await;
    let expected: BTreeSet<(String, i64)> = (0..3000).map(|i| (format!("U{i:05}"), i)).collect();
    let rows: Vec<Value> = expected
        .iter()
        .map(|(u, n)| json!({"json": {"user_id": u, "n": n}}))
        .collect();
    let inserted = post_json(
        &format!("{base}/datasets/seg/tables/users/insertAll"),
        json!({ "rows": rows }),
    )
    .await;
    assert_eq!(
        inserted["insertErrors"].as_array().map_or(0, Vec::len),
        0,
        "{inserted}"
    );

    let bucket = stack.bucket().to_string();
    let exported = query(
        &stack,
        &format!(
            "EXPORT DATA OPTIONS(uri='gs://{bucket}/exports/run1/part-*.json', format='JSON', overwrite=true) \
             AS SELECT user_id, n FROM seg.users"
        ),
    )
    .await;
    assert_eq!(exported["statementType"], "EXPORT_DATA");

    // Immediately after EXPORT DATA returned: listed (across pages) and served.
    let objects = list(&stack, "exports/run1/").await;
    assert!(objects.len() > 1, "sharded export: {objects:?}");
    assert!(
        objects
            .iter()
            .all(|(name, _)| name.starts_with("exports/run1/part-") && name.ends_with(".json"))
    );
    let mut got = BTreeSet::new();
    for (name, size) in &objects {
        let body = download(&stack, name).await;
        assert_eq!(body.len() as u64, *size, "{name}: listed size matches");
        for row in ndjson_user_ids(&body) {
            assert!(got.insert(row), "row exported once");
        }
    }
    assert_eq!(got, expected, "every row, through the GCS endpoint");

    // Object metadata carries checksums that match the content.
    let (first, _) = &objects[0];
    let meta: Value = client()
        .get(format!(
            "{}/storage/v1/b/{bucket}/o/{}",
            stack.storage_url(),
            first.replace('/', "%2F")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = download(&stack, first).await;
    let crc = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(&body).to_be_bytes())
    };
    assert_eq!(meta["crc32c"], crc.as_str(), "{meta}");

    // A range request on an exported object.
    let ranged = client()
        .get(format!(
            "{}/download/storage/v1/b/{bucket}/o/{}?alt=media",
            stack.storage_url(),
            first.replace('/', "%2F")
        ))
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &body[..10]);

    // Re-exporting over the same single-file URI: the new content is served (the bridge notices changes).
    for limit in [5, 7] {
        query(
            &stack,
            &format!(
                "EXPORT DATA OPTIONS(uri='gs://{bucket}/exports/single/all.json', format='JSON', overwrite=true) \
                 AS SELECT user_id, n FROM seg.users WHERE n < {limit}"
            ),
        )
        .await;
        let body = download(&stack, "exports/single/all.json").await;
        assert_eq!(
            ndjson_user_ids(&body).len(),
            limit as usize,
            "export with n < {limit}"
        );
    }
    assert_eq!(list(&stack, "exports/single/").await.len(), 1);
    assert_eq!(
        list(&stack, "").await.len(),
        objects.len() + 1,
        "whole-bucket listing works too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_json_api_use_works_through_the_bridge() {
    let stack = Stack::start(StackOptions::default())
        .await
        .expect("stack starts");
    let (gcs, bucket) = (stack.storage_url().to_string(), stack.bucket().to_string());

    // Media upload of 3 MiB.
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let up = client()
        .post(format!(
            "{gcs}/upload/storage/v1/b/{bucket}/o?uploadType=media&name=in/blob.bin"
        ))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200, "{}", up.text().await.unwrap());

    // Listed with its size, downloaded whole and by range.
    let listed: Value = client()
        .get(format!("{gcs}/storage/v1/b/{bucket}/o?prefix=in/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["name"], "in/blob.bin");
    assert_eq!(items[0]["size"], (3u32 << 20).to_string());
    assert!(
        items[0]["mediaLink"].as_str().unwrap().starts_with(&gcs),
        "links point at the bridge"
    );
    let whole = client()
        .get(format!(
            "{gcs}/storage/v1/b/{bucket}/o/in%2Fblob.bin?alt=media"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.bytes().await.unwrap().as_ref(), data.as_slice());
    let part = client()
        .get(format!(
            "{gcs}/storage/v1/b/{bucket}/o/in%2Fblob.bin?alt=media"
        ))
        .header("Range", "bytes=1000000-1000099")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &data[1_000_000..1_000_100]
    );

    // An NDJSON upload, loaded into BigQuery from gs:// (the other direction through the shared root).
    let ndjson: String = (0..50)
        .map(|i| format!("{{\"user_id\":\"L{i}\",\"n\":{i}}}\n"))
        .collect();
    let up = client()
        .post(format!(
            "{gcs}/upload/storage/v1/b/{bucket}/o?uploadType=media&name=in/rows.json"
        ))
        .header("content-type", "application/json")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    let base = format!(
        "{}/bigquery/v2/projects/{}",
        stack.bigquery_url(),
        stack.project_id()
    );
    post_json(
        &format!("{base}/datasets"),
        json!({"datasetReference": {"datasetId": "ld"}}),
    )
    .await;
    let job = post_json(
        &format!("{base}/jobs"),
        json!({"configuration": {"load": {
            "sourceUris": [format!("gs://{bucket}/in/rows.json")],
            "sourceFormat": "NEWLINE_DELIMITED_JSON",
            "destinationTable": {"projectId": stack.project_id(), "datasetId": "ld", "tableId": "loaded"},
            "schema": {"fields": [{"name": "user_id", "type": "STRING"}, {"name": "n", "type": "INT64"}]},
        }}}),
    )
    .await;
    assert!(job["status"]["errorResult"].is_null(), "{job}");
    let count = query(&stack, "SELECT COUNT(*) AS c FROM ld.loaded").await;
    assert_eq!(count["rows"][0]["f"][0]["v"], "50", "{count}");

    // Delete, then it is gone.
    let del = client()
        .delete(format!("{gcs}/storage/v1/b/{bucket}/o/in%2Fblob.bin"))
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    let gone = client()
        .get(format!("{gcs}/storage/v1/b/{bucket}/o/in%2Fblob.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}
