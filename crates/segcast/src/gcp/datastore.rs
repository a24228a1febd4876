//! Datastore (Firestore in Datastore mode) as a small typed document store.
//!
//! Client choice: Google publishes no Rust data-plane crate for Datastore. `gcloud-sdk` is the best-kept option:
//! generated from Google's protos on every release, gRPC via tonic, and it authenticates with the same
//! `google-cloud-auth` credentials the official crates use (anonymous for the emulator). A hand-written REST
//! client would be slower (measured: half the throughput) and one more thing to maintain.
//!
//! Each entity stores the whole document as one unindexed JSON property (`doc`) plus the few indexed properties
//! its queries filter on ([`Doc::indexed`]), so the Rust types stay the single definition of the data.

use crate::config::Settings;
use anyhow::{Context, anyhow};
use gcloud_sdk::GoogleApi;
use gcloud_sdk::GoogleAuthMiddleware;
use gcloud_sdk::google::datastore::v1 as ds;
use gcloud_sdk::google::datastore::v1::datastore_client::DatastoreClient;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::time::Duration;

/// A type stored as a Datastore entity of kind [`Doc::KIND`] keyed by [`Doc::key`].
pub trait Doc: Serialize + DeserializeOwned + Send + Sync {
    const KIND: &'static str;
    fn key(&self) -> String;
    /// Properties queries filter on (equality only: no composite index is needed).
    fn indexed(&self) -> Vec<(&'static str, Indexed)> {
        Vec::new()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Indexed {
    Str(String),
    Bool(bool),
    Int(i64),
}

impl Indexed {
    fn to_value(&self) -> ds::Value {
        use ds::value::ValueType;
        let v = match self {
            Indexed::Str(s) => ValueType::StringValue(s.clone()),
            Indexed::Bool(b) => ValueType::BooleanValue(*b),
            Indexed::Int(i) => ValueType::IntegerValue(*i),
        };
        ds::Value {
            value_type: Some(v),
            ..Default::default()
        }
    }
}

/// What [`Datastore::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    AlreadyExists,
}

type Client = DatastoreClient<GoogleAuthMiddleware>;

#[derive(Clone)]
pub struct Datastore {
    api: GoogleApi<Client>,
    project: String,
    namespace: String,
}

impl Datastore {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let endpoint = settings
            .endpoints
            .datastore
            .clone()
            .unwrap_or_else(|| "https://datastore.googleapis.com".into());
        let creds = super::credentials(settings.endpoints.datastore.as_deref())?;
        let api =
            GoogleApi::from_function_with_credentials(DatastoreClient::new, endpoint, None, creds)
                .await
                .map_err(|e| anyhow!("connecting to Datastore: {e}"))?;
        Ok(Self {
            api,
            project: settings.project_id.clone(),
            namespace: settings.namespace.clone(),
        })
    }

    fn key(&self, kind: &str, name: &str) -> ds::Key {
        ds::Key {
            partition_id: Some(ds::PartitionId {
                project_id: self.project.clone(),
                namespace_id: self.namespace.clone(),
                ..Default::default()
            }),
            path: vec![ds::key::PathElement {
                kind: kind.to_owned(),
                id_type: Some(ds::key::path_element::IdType::Name(name.to_owned())),
            }],
        }
    }

    fn to_entity<T: Doc>(&self, doc: &T) -> anyhow::Result<ds::Entity> {
        use ds::value::ValueType;
        let mut properties = HashMap::new();
        properties.insert(
            "doc".to_owned(),
            ds::Value {
                value_type: Some(ValueType::StringValue(serde_json::to_string(doc)?)),
                exclude_from_indexes: true,
                ..Default::default()
            },
        );
        for (name, v) in doc.indexed() {
            properties.insert(name.to_owned(), v.to_value());
        }
        Ok(ds::Entity {
            key: Some(self.key(T::KIND, &doc.key())),
            properties,
        })
    }

    fn from_entity<T: Doc>(entity: &ds::Entity) -> anyhow::Result<T> {
        match entity
            .properties
            .get("doc")
            .and_then(|v| v.value_type.as_ref())
        {
            Some(ds::value::ValueType::StringValue(s)) => {
                serde_json::from_str(s).with_context(|| format!("decoding a stored {}", T::KIND))
            }
            _ => Err(anyhow!("a stored {} has no document", T::KIND)),
        }
    }

    fn client(&self) -> Client {
        self.api.get()
    }

    pub async fn get<T: Doc>(&self, key: &str) -> anyhow::Result<Option<T>> {
        let mut found = self.get_many::<T>(&[key.to_owned()]).await?;
        Ok(found.remove(key))
    }

    /// Looks up many keys at once (missing ones are absent from the map).
    pub async fn get_many<T: Doc>(&self, keys: &[String]) -> anyhow::Result<HashMap<String, T>> {
        let mut out = HashMap::new();
        let mut pending: Vec<ds::Key> = keys.iter().map(|k| self.key(T::KIND, k)).collect();
        while !pending.is_empty() {
            let resp = self
                .client()
                .lookup(ds::LookupRequest {
                    project_id: self.project.clone(),
                    keys: pending,
                    ..Default::default()
                })
                .await
                .with_context(|| format!("Datastore lookup of {}", T::KIND))?
                .into_inner();
            for r in resp.found {
                if let Some(e) = r.entity {
                    let doc: T = Self::from_entity(&e)?;
                    out.insert(doc.key(), doc);
                }
            }
            pending = resp.deferred;
        }
        Ok(out)
    }

    async fn commit(
        &self,
        mutations: Vec<ds::Mutation>,
        txn: Option<Vec<u8>>,
    ) -> Result<(), tonic_status::Status> {
        let (mode, selector) = match txn {
            Some(t) => (
                ds::commit_request::Mode::Transactional,
                Some(ds::commit_request::TransactionSelector::Transaction(t)),
            ),
            None => (ds::commit_request::Mode::NonTransactional, None),
        };
        self.client()
            .commit(ds::CommitRequest {
                project_id: self.project.clone(),
                mode: mode as i32,
                mutations,
                transaction_selector: selector,
                ..Default::default()
            })
            .await
            .map(|_| ())
    }

    /// Inserts `doc` unless an entity with its key exists.
    pub async fn insert<T: Doc>(&self, doc: &T) -> anyhow::Result<Inserted> {
        self.insert_with(doc, None::<&T>).await
    }

    /// Inserts `doc` and, in the same commit, `also` (e.g. its audit entry): both are written or neither is.
    pub async fn insert_with<T: Doc, E: Doc>(
        &self,
        doc: &T,
        also: Option<&E>,
    ) -> anyhow::Result<Inserted> {
        let mut mutations = vec![ds::Mutation {
            operation: Some(ds::mutation::Operation::Insert(self.to_entity(doc)?)),
            ..Default::default()
        }];
        if let Some(also) = also {
            mutations.push(ds::Mutation {
                operation: Some(ds::mutation::Operation::Insert(self.to_entity(also)?)),
                ..Default::default()
            });
        }
        match self.commit(mutations, None).await {
            Ok(()) => Ok(Inserted::New),
            Err(s) if s.code() == tonic_status::Code::AlreadyExists => Ok(Inserted::AlreadyExists),
            Err(s) => Err(anyhow!("Datastore insert of {}: {s}", T::KIND)),
        }
    }

    pub async fn upsert<T: Doc>(&self, doc: &T) -> anyhow::Result<()> {
        self.upsert_many(std::slice::from_ref(doc)).await
    }

    /// Writes `doc` and inserts `also` (e.g. the audit entry of the change) in one commit: both or neither.
    pub async fn upsert_with<T: Doc, E: Doc>(&self, doc: &T, also: &E) -> anyhow::Result<()> {
        let mutations = vec![
            ds::Mutation {
                operation: Some(ds::mutation::Operation::Upsert(self.to_entity(doc)?)),
                ..Default::default()
            },
            ds::Mutation {
                operation: Some(ds::mutation::Operation::Insert(self.to_entity(also)?)),
                ..Default::default()
            },
        ];
        self.commit(mutations, None)
            .await
            .map_err(|s| anyhow!("Datastore upsert of {} with {}: {s}", T::KIND, E::KIND))
    }

    /// Upserts in commits of at most 500 mutations (Datastore's limit). Not atomic across commits.
    pub async fn upsert_many<T: Doc>(&self, docs: &[T]) -> anyhow::Result<()> {
        for chunk in docs.chunks(500) {
            let mutations = chunk
                .iter()
                .map(|d| {
                    Ok(ds::Mutation {
                        operation: Some(ds::mutation::Operation::Upsert(self.to_entity(d)?)),
                        ..Default::default()
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            self.commit(mutations, None)
                .await
                .map_err(|s| anyhow!("Datastore upsert of {}: {s}", T::KIND))?;
        }
        Ok(())
    }

    pub async fn delete<T: Doc>(&self, key: &str) -> anyhow::Result<()> {
        let m = ds::Mutation {
            operation: Some(ds::mutation::Operation::Delete(self.key(T::KIND, key))),
            ..Default::default()
        };
        self.commit(vec![m], None)
            .await
            .map_err(|s| anyhow!("Datastore delete of {}: {s}", T::KIND))
    }

    /// The keys of the entities of `T` whose indexed `property` equals `value` (a keys-only query: for kinds whose
    /// entities are large, which are then read a few at a time with [`Datastore::get_many`]; a query returning
    /// them whole can exceed the 4 MB a response may hold).
    pub async fn query_keys_eq<T: Doc>(
        &self,
        property: &str,
        value: Indexed,
    ) -> anyhow::Result<Vec<String>> {
        let entities = self
            .run_query(T::KIND, Some(eq_filter(property, value)), true)
            .await?;
        Ok(entities
            .iter()
            .filter_map(|e| match &e.key.as_ref()?.path.last()?.id_type {
                Some(ds::key::path_element::IdType::Name(n)) => Some(n.clone()),
                _ => None,
            })
            .collect())
    }

    /// All entities of `T` whose indexed `property` equals `value` (strongly consistent in Firestore mode).
    pub async fn query_eq<T: Doc>(&self, property: &str, value: Indexed) -> anyhow::Result<Vec<T>> {
        self.query(Some(eq_filter(property, value))).await
    }

    /// Every entity of `T` (for the console's lists: registered contents, segments, campaigns, users).
    pub async fn list<T: Doc>(&self) -> anyhow::Result<Vec<T>> {
        self.query(None).await
    }

    async fn query<T: Doc>(&self, filter: Option<ds::Filter>) -> anyhow::Result<Vec<T>> {
        self.run_query(T::KIND, filter, false)
            .await?
            .iter()
            .map(Self::from_entity)
            .collect()
    }

    /// Runs a query over `kind` page by page (500 entities a page) and returns every result; `keys_only`
    /// projects each entity to its key.
    async fn run_query(
        &self,
        kind: &str,
        filter: Option<ds::Filter>,
        keys_only: bool,
    ) -> anyhow::Result<Vec<ds::Entity>> {
        let projection = if keys_only {
            vec![ds::Projection {
                property: Some(ds::PropertyReference {
                    name: "__key__".to_owned(),
                }),
            }]
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        let mut cursor: Vec<u8> = Vec::new();
        loop {
            let query = ds::Query {
                kind: vec![ds::KindExpression {
                    name: kind.to_owned(),
                }],
                projection: projection.clone(),
                filter: filter.clone(),
                start_cursor: cursor.clone(),
                limit: Some(500),
                ..Default::default()
            };
            let resp = self
                .client()
                .run_query(ds::RunQueryRequest {
                    project_id: self.project.clone(),
                    partition_id: Some(ds::PartitionId {
                        project_id: self.project.clone(),
                        namespace_id: self.namespace.clone(),
                        ..Default::default()
                    }),
                    query_type: Some(ds::run_query_request::QueryType::Query(query)),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("Datastore query of {kind}"))?
                .into_inner();
            let Some(batch) = resp.batch else { break };
            let n = batch.entity_results.len();
            out.extend(batch.entity_results.into_iter().filter_map(|r| r.entity));
            let more =
                batch.more_results == ds::query_result_batch::MoreResultsType::NotFinished as i32;
            if n == 0 || !more {
                break;
            }
            cursor = batch.end_cursor;
        }
        Ok(out)
    }

    /// Reads `key` and writes what `f` decides, in one serializable transaction; retried when contended.
    /// `f` returns `Some(new)` to write or `None` to leave it. Returns what was written.
    pub async fn update<T, F>(&self, key: &str, mut f: F) -> anyhow::Result<Option<T>>
    where
        T: Doc,
        F: FnMut(Option<T>) -> anyhow::Result<Option<T>>,
    {
        self.update_with::<T, T, _>(key, |current| Ok(f(current)?.map(|next| (next, None))))
            .await
    }

    /// Like [`Datastore::update`], and inserts `f`'s second document (e.g. the audit entry of the change) in
    /// the same transaction: both are written or neither is.
    pub async fn update_with<T, E, F>(&self, key: &str, mut f: F) -> anyhow::Result<Option<T>>
    where
        T: Doc,
        E: Doc,
        F: FnMut(Option<T>) -> anyhow::Result<Option<(T, Option<E>)>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let txn = self
                .client()
                .begin_transaction(ds::BeginTransactionRequest {
                    project_id: self.project.clone(),
                    ..Default::default()
                })
                .await
                .context("Datastore begin transaction")?
                .into_inner()
                .transaction;
            let resp = self
                .client()
                .lookup(ds::LookupRequest {
                    project_id: self.project.clone(),
                    keys: vec![self.key(T::KIND, key)],
                    read_options: Some(ds::ReadOptions {
                        consistency_type: Some(ds::read_options::ConsistencyType::Transaction(
                            txn.clone(),
                        )),
                    }),
                    ..Default::default()
                })
                .await;
            let current = match resp {
                Ok(r) => match r
                    .into_inner()
                    .found
                    .into_iter()
                    .next()
                    .and_then(|f| f.entity)
                {
                    Some(e) => Some(Self::from_entity::<T>(&e)?),
                    None => None,
                },
                Err(s) if retryable(&s) && attempt < 8 => {
                    self.rollback(txn).await;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(s) => {
                    return Err(anyhow!(
                        "Datastore transactional lookup of {}: {s}",
                        T::KIND
                    ));
                }
            };
            let next = match f(current) {
                Ok(n) => n,
                Err(e) => {
                    self.rollback(txn).await;
                    return Err(e);
                }
            };
            let Some((next, also)) = next else {
                self.rollback(txn).await;
                return Ok(None);
            };
            let mut mutations = vec![ds::Mutation {
                operation: Some(ds::mutation::Operation::Upsert(self.to_entity(&next)?)),
                ..Default::default()
            }];
            if let Some(also) = also {
                mutations.push(ds::Mutation {
                    operation: Some(ds::mutation::Operation::Insert(self.to_entity(&also)?)),
                    ..Default::default()
                });
            }
            match self.commit(mutations, Some(txn)).await {
                Ok(()) => return Ok(Some(next)),
                Err(s) if retryable(&s) && attempt < 8 => {
                    tokio::time::sleep(backoff(attempt)).await
                }
                Err(s) => {
                    return Err(anyhow!(
                        "Datastore transactional commit of {}: {s}",
                        T::KIND
                    ));
                }
            }
        }
    }

    async fn rollback(&self, txn: Vec<u8>) {
        let _ = self
            .client()
            .rollback(ds::RollbackRequest {
                project_id: self.project.clone(),
                transaction: txn,
                ..Default::default()
            })
            .await;
    }
}

mod tonic_status {
    pub use gcloud_sdk::tonic::{Code, Status};
}

/// `property = value`.
fn eq_filter(property: &str, value: Indexed) -> ds::Filter {
    ds::Filter {
        filter_type: Some(ds::filter::FilterType::PropertyFilter(ds::PropertyFilter {
            property: Some(ds::PropertyReference {
                name: property.to_owned(),
            }),
            op: ds::property_filter::Operator::Equal as i32,
            value: Some(value.to_value()),
        })),
    }
}

fn retryable(s: &tonic_status::Status) -> bool {
    matches!(
        s.code(),
        tonic_status::Code::Aborted
            | tonic_status::Code::Unavailable
            | tonic_status::Code::DeadlineExceeded
    )
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 * 2u64.pow(attempt.min(6)) + rand::random::<u64>() % 50)
}
